// The re-keying plan (section 6.4): which rules run on the input's
// partitions and which after re-keying, and which events each stage forwards.
#include <doctest/doctest.h>

#include "cepheus/daemon/rekey_plan.h"
#include "test_util.h"

using namespace cepheus;

namespace {

const char* kRules = R"(
rule two_orders
  key user_id
  match o: order{2}
  within 1h
rule card_testing
  key card_id
  match small: payment[amount < 5]{3} -> big: payment[amount > 500]
  within 1m
rule refund_after_payment
  key card_id
  match p: payment -> r: refund
  within 1h
rule device_burst
  key device_id
  match l: login -> any => o: order
  within 10m
)";

}  // namespace

TEST_CASE("rules keyed on the partition key run directly; each other key field is one stage forwarding its rules' types") {
  auto rules = testing::CompileRules(kRules);
  daemon::Plan plan = daemon::MakePlan(*rules, "user_id", "fraud");
  CHECK(plan.direct == std::vector<std::string>{"two_orders"});
  REQUIRE(plan.stages.size() == 2);
  const daemon::RekeyStage* card = plan.Find("card_id");
  REQUIRE(card != nullptr);
  CHECK(card->topic == "fraud-rekey-card_id");
  CHECK(card->rules == std::vector<std::string>{"card_testing", "refund_after_payment"});
  CHECK(card->types == std::vector<std::string>{"payment", "refund"});
  CHECK_FALSE(card->all_types);
  CHECK(card->Forwards(rules->types.Find("payment")));
  CHECK_FALSE(card->Forwards(rules->types.Find("order")));
  CHECK_FALSE(card->Forwards(-1));  // a type no rule names
  const daemon::RekeyStage* device = plan.Find("device_id");
  REQUIRE(device != nullptr);
  CHECK(device->all_types);  // `any` and `=>` read every event of the key
  CHECK(device->Forwards(-1));
  CHECK(plan.Find("user_id") == nullptr);
  CHECK(plan.DirectFields() == std::vector<std::string>{"user_id"});
  CHECK(daemon::FormatPlan(plan) ==
        "plan: 1 rule keyed on the partition key 'user_id' run directly: two_orders\n"
        "plan: 2 rules keyed on 'card_id' run after re-keying through topic fraud-rekey-card_id (events forwarded: "
        "payment, refund): card_testing, refund_after_payment\n"
        "plan: 1 rule keyed on 'device_id' run after re-keying through topic fraud-rekey-device_id (every event "
        "forwarded): device_burst\n");
}

TEST_CASE("with every rule on the partition key nothing is re-keyed and engines run every key field") {
  auto rules = testing::CompileRules("rule a key card_id match p: payment within 1m\n");
  daemon::Plan plan = daemon::MakePlan(*rules, "card_id", "g");
  CHECK(plan.stages.empty());
  CHECK(plan.DirectFields().empty());
  CHECK(daemon::FormatPlan(plan) == "plan: 1 rule keyed on the partition key 'card_id' run directly: a\n");
}
