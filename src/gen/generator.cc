// The synthetic event generator behind `cepheus gen`.
//
// Randomness. Every random choice comes from one std::mt19937_64 seeded with
// options.seed. The standard distributions (uniform_int_distribution, ...) are
// implementation-defined and differ between libstdc++, libc++ and MSVC, so
// they are not used: integers in [0, n) are the raw 64-bit output modulo n
// (the bias is below n / 2^64) and reals in [0, 1) are its top 53 bits times
// 2^-53. The only libm call is std::pow while building the Zipf table; a
// one-ulp difference between math libraries there could change a draw only
// if it landed exactly on a bucket edge. The same seed gives the same bytes.
//
// Users. User "u<N>" (N = 1..users) has card "c<N>" and a home country picked
// by a fixed hash of N, so a user's home never depends on the seed. Users are
// Zipf distributed by rank: user N has weight N^-s (s = options.zipf, 1.1 by
// default). The table holds the
// running sums of the weights (one double per user, 80 MB for 10 million
// users) and a draw is a binary search for u * total. With the default 1000
// users, u1 gets about 18% of the draws and the median user about 0.02%.
//
// Normal traffic. An event-time clock starts at options.start and advances
// after each normal event by a gap uniform in [0, 2 * mean_gap], so its mean
// is mean_gap. A normal event is a login (from home, with a device), logout,
// order, refund (of a recently paid normal order, by its owner), password
// change or payment-method change. Orders are placed from home, mostly cost
// 10 to 300 (skewed low, 1% cost 300 to 900) and 99% are paid 1 to 10 s later
// by a payment with the same order_id, amount and country. Payments are not
// emitted now but scheduled as future events.
//
// Future events. Scheduled events wait in a min-heap ordered by (ts, the
// order in which they were scheduled). Each step emits the top of the heap
// when its ts is at or before the clock, otherwise a new normal event at the
// clock. Everything scheduled lies at or after the clock, so this stream is
// sorted by ts. Generation stops after options.events events; whatever is
// still scheduled then is dropped (an incident near the end may be cut short).
//
// Incidents. After each event, with probability fraud_rate, an incident
// starts for a Zipf-drawn user 0 to 2 s after the clock. Its events are put on
// the same heap, so they interleave with normal traffic by event time. The
// kind is chosen uniformly:
//   multi_country  3 paid orders from 3 different countries within 80 s.
//   takeover       login from a country other than home, 5 to 40 s later a
//                  password or payment-method change, 5 to 60 s later an
//                  order over 1000 (paid), all from that foreign country.
//   card_testing   3 to 5 card payments under 5 within 45 s (each with a fresh
//                  order_id and no order), then 5 to 15 s later a card payment
//                  over 500; from one random country.
//   unpaid         an order over 200 that is never paid.
//   velocity       6 paid orders from home within 250 s, each 550 to 1500, so
//                  over 3300 in total.
// Normal traffic alone rarely matches these: its orders come from home, six
// of them reach 3000 only with several of the 1% expensive ones, and it never
// logs in from abroad.
//
// Out of order. When out_of_order = D > 0, each event of the sorted stream is
// held back with probability 5% and given a release time ts + [1, D]. Before
// the next sorted event (ts t) goes out, the held events whose release time
// is before t are emitted, in release order; held events left at the end are
// flushed the same way. A held event therefore follows events with a larger
// ts, but the largest ts emitted before it is at most its release time, so it
// is never more than D late. Its "ts" stays its true time, and ids are given
// at emission, so "id" always counts up in output order.
//
// Speed. Events are small structs (no strings) until they are written; one
// std::string buffer is reused for the JSON text.
#include "cepheus/gen/generator.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <queue>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "cepheus/common/json_writer.h"

namespace cepheus::gen {
namespace {

constexpr double kOutOfOrderRate = 0.05;
constexpr double kNormalPaidRate = 0.99;
constexpr size_t kRecentOrders = 4096;  // paid normal orders remembered for refunds

constexpr std::array<std::string_view, 10> kCountries = {"FR", "DE", "US", "GB", "BR",
                                                         "IN", "ES", "IT", "NL", "PL"};
constexpr std::array<std::string_view, 3> kDevices = {"web", "ios", "android"};
constexpr std::array<std::string_view, 7> kCategories = {
    "electronics", "fashion", "grocery", "books", "home", "toys", "gift_cards"};
constexpr std::array<std::string_view, 2> kMethods = {"card", "paypal"};

enum class Type : uint8_t {
  kLogin,
  kLogout,
  kOrder,
  kPayment,
  kPasswordChange,
  kPaymentMethodChange,
  kRefund,
};

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kLogin: return "login";
    case Type::kLogout: return "logout";
    case Type::kOrder: return "order";
    case Type::kPayment: return "payment";
    case Type::kPasswordChange: return "password_change";
    case Type::kPaymentMethodChange: return "payment_method_change";
    case Type::kRefund: return "refund";
  }
  return "unknown";
}

// One event before it is written. `detail` indexes kDevices (login),
// kCategories (order) or kMethods (payment).
struct Event {
  Millis ts = 0;
  int64_t user = 0;
  int64_t order = 0;         // order number, for order, payment and refund
  int64_t amount_cents = 0;  // for order, payment and refund
  Type type = Type::kLogin;
  uint8_t country = 0;
  uint8_t detail = 0;
  bool normal_payment = false;  // a normal order's payment: refundable once emitted
};

struct Queued {
  Event event;
  Millis key;  // ts for scheduled events, release time for held ones
  uint64_t seq;
};

struct LaterFirst {
  bool operator()(const Queued& a, const Queued& b) const {
    if (a.key != b.key) return a.key > b.key;
    return a.seq > b.seq;
  }
};

using MinHeap = std::priority_queue<Queued, std::vector<Queued>, LaterFirst>;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint8_t HomeCountry(int64_t user) {
  return static_cast<uint8_t>(SplitMix64(static_cast<uint64_t>(user)) % kCountries.size());
}

// Appends "<prefix><n>" as a JSON string.
void AppendId(std::string* out, char prefix, int64_t n) {
  char text[24];
  text[0] = prefix;
  auto end = fmt::format_to_n(text + 1, sizeof(text) - 1, "{}", n).out;
  AppendJsonString(out, std::string_view(text, static_cast<size_t>(end - text)));
}

class Generator {
 public:
  Generator(const GenOptions& options, const std::function<void(std::string_view)>& emit)
      : options_(options), emit_(emit), rng_(options.seed) {
    users_ = std::max<int64_t>(options.users, 1);
    mean_gap_ = std::max<Millis>(options.mean_gap, 0);
    out_of_order_ = std::max<Millis>(options.out_of_order, 0);
    fraud_rate_ = std::isnan(options.fraud_rate) ? 0.0 : std::clamp(options.fraud_rate, 0.0, 1.0);
    clock_ = options.start;
    zipf_ = std::isnan(options.zipf) ? 1.1 : std::clamp(options.zipf, 0.0, 4.0);
    BuildZipf();
    buffer_.reserve(256);
  }

  GenStats Run() {
    const int64_t total = std::max<int64_t>(options_.events, 0);
    for (int64_t produced = 0; produced < total; ++produced) {
      if (options_.stop != nullptr && options_.stop->load(std::memory_order_relaxed)) break;
      Event event;
      if (!scheduled_.empty() && scheduled_.top().key <= clock_) {
        event = scheduled_.top().event;
        scheduled_.pop();
      } else {
        event = NormalEvent();
        clock_ += static_cast<Millis>(Below(static_cast<uint64_t>(2 * mean_gap_) + 1));
      }
      if (fraud_rate_ > 0 && Unit() < fraud_rate_) StartIncident();
      Release(event);
    }
    while (!held_.empty()) {
      Write(held_.top().event);
      held_.pop();
    }
    return stats_;
  }

 private:
  // ---- randomness -------------------------------------------------------

  uint64_t Below(uint64_t n) { return rng_() % n; }
  // [lo, hi], inclusive.
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }
  double Unit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  void BuildZipf() {
    cdf_.resize(static_cast<size_t>(users_));
    double sum = 0;
    for (int64_t k = 1; k <= users_; ++k) {
      sum += std::pow(static_cast<double>(k), -zipf_);
      cdf_[static_cast<size_t>(k - 1)] = sum;
    }
  }

  int64_t ZipfUser() {
    double target = Unit() * cdf_.back();
    auto it = std::upper_bound(cdf_.begin(), cdf_.end(), target);
    if (it == cdf_.end()) --it;
    return static_cast<int64_t>(it - cdf_.begin()) + 1;
  }

  uint8_t OtherCountry(uint8_t country) {
    return static_cast<uint8_t>((country + 1 + Below(kCountries.size() - 1)) % kCountries.size());
  }

  // ---- normal traffic ---------------------------------------------------

  Event NormalEvent() {
    Event e;
    e.ts = clock_;
    e.user = ZipfUser();
    e.country = HomeCountry(e.user);
    uint64_t roll = Below(1000);
    if (roll < 250) {
      e.type = Type::kLogin;
      e.detail = static_cast<uint8_t>(Below(kDevices.size()));
    } else if (roll < 450) {
      e.type = Type::kLogout;
    } else if (roll < 930) {
      e = MakeOrder(e.ts, e.user, e.country, NormalCents());
      if (Unit() < kNormalPaidRate) {
        Schedule(MakePayment(e, e.ts + Between(1000, 10000), /*normal=*/true));
      }
    } else if (roll < 960 && !recent_orders_.empty()) {  // nothing to refund yet: fall through
      Event paid = recent_orders_[Below(recent_orders_.size())];
      e.type = Type::kRefund;
      e.user = paid.user;
      e.country = paid.country;
      e.order = paid.order;
      e.amount_cents = paid.amount_cents;
    } else if (roll < 980) {
      e.type = Type::kPasswordChange;
    } else {
      e.type = Type::kPaymentMethodChange;
    }
    return e;
  }

  static double Square(double x) { return x * x; }

  int64_t NormalCents() {
    return Unit() < 0.99 ? 1000 + static_cast<int64_t>(29000 * Square(Unit()))
                         : Between(30000, 90000);
  }

  Event MakeOrder(Millis ts, int64_t user, uint8_t country, int64_t cents) {
    Event e;
    e.ts = ts;
    e.user = user;
    e.country = country;
    e.type = Type::kOrder;
    e.order = ++orders_;
    e.amount_cents = cents;
    e.detail = static_cast<uint8_t>(Below(kCategories.size()));
    return e;
  }

  // The payment of `order` at `ts`: same user, country, order_id and amount.
  Event MakePayment(const Event& order, Millis ts, bool normal) {
    Event e = order;
    e.ts = ts;
    e.type = Type::kPayment;
    e.detail = Unit() < 0.8 ? 0 : 1;
    e.normal_payment = normal;
    return e;
  }

  void Schedule(const Event& e) { scheduled_.push(Queued{e, e.ts, seq_++}); }

  void ScheduleOrderAndPayment(Millis ts, int64_t user, uint8_t country, int64_t cents) {
    Event order = MakeOrder(ts, user, country, cents);
    Schedule(order);
    Schedule(MakePayment(order, ts + Between(2000, 8000), /*normal=*/false));
  }

  // ---- incidents --------------------------------------------------------

  // One label per incident (`cepheus gen --labels`): whom it targets (the
  // user, or the card for card testing), the event times of its first and
  // last events, and its kind. Writing it draws no random number, so the
  // events are the same with and without labels.
  void Label(char entity, int64_t user, Millis from, Millis to, const char* kind) {
    if (options_.labels == nullptr) return;
    std::string out = "{\"key\":";
    AppendId(&out, entity, user);
    fmt::format_to(std::back_inserter(out), ",\"from\":{},\"to\":{},\"label\":\"{}\"}}", from, to, kind);
    (*options_.labels)(out);
  }

  void StartIncident() {
    ++stats_.incidents;
    const int64_t user = ZipfUser();
    const uint8_t home = HomeCountry(user);
    Millis t = clock_ + Between(0, 2000);
    const Millis from = t;
    switch (Below(5)) {
      case 0: {  // multi_country
        std::array<uint8_t, 10> countries = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        for (size_t i = 0; i < 3; ++i) {
          std::swap(countries[i], countries[i + Below(countries.size() - i)]);
          if (i > 0) t += Between(5000, 40000);
          ScheduleOrderAndPayment(t, user, countries[i], NormalCents());
        }
        Label('u', user, from, t, "multi_country");
        break;
      }
      case 1: {  // takeover
        const uint8_t away = OtherCountry(home);
        Event login;
        login.ts = t;
        login.user = user;
        login.country = away;
        login.type = Type::kLogin;
        login.detail = static_cast<uint8_t>(Below(kDevices.size()));
        Schedule(login);
        Event change = login;
        change.ts = t += Between(5000, 40000);
        change.type = Unit() < 0.5 ? Type::kPasswordChange : Type::kPaymentMethodChange;
        change.detail = 0;
        Schedule(change);
        const Millis order_ts = t + Between(5000, 60000);
        ScheduleOrderAndPayment(order_ts, user, away, Between(100100, 500000));
        Label('u', user, from, order_ts, "takeover");
        break;
      }
      case 2: {  // card_testing
        const uint8_t where = static_cast<uint8_t>(Below(kCountries.size()));
        const int64_t probes = Between(3, 5);
        Event payment;
        payment.user = user;
        payment.country = where;
        payment.type = Type::kPayment;
        payment.detail = 0;  // card
        for (int64_t i = 0; i < probes; ++i) {
          if (i > 0) t += Between(2000, 11000);
          payment.ts = t;
          payment.order = ++orders_;
          payment.amount_cents = Between(50, 499);
          Schedule(payment);
        }
        payment.ts = t + Between(5000, 15000);
        payment.order = ++orders_;
        payment.amount_cents = Between(50001, 200000);
        Schedule(payment);
        Label('c', user, from, payment.ts, "card_testing");
        break;
      }
      case 3:  // unpaid
        Schedule(MakeOrder(t, user, home, Between(20001, 200000)));
        Label('u', user, from, t, "unpaid");
        break;
      default:  // velocity
        for (int i = 0; i < 6; ++i) {
          if (i > 0) t += Between(10000, 50000);
          ScheduleOrderAndPayment(t, user, home, Between(55000, 150000));
        }
        Label('u', user, from, t, "velocity");
        break;
    }
  }

  // ---- output -----------------------------------------------------------

  // Takes the next event of the sorted stream; holds some back when
  // out_of_order is on.
  void Release(const Event& e) {
    if (out_of_order_ > 0) {
      while (!held_.empty() && held_.top().key < e.ts) {
        Write(held_.top().event);
        held_.pop();
      }
      if (Unit() < kOutOfOrderRate) {
        held_.push(Queued{e, e.ts + Between(1, out_of_order_), seq_++});
        return;
      }
    }
    Write(e);
  }

  void Write(const Event& e) {
    ++stats_.events;
    std::string& out = buffer_;
    out.clear();
    out.append("{\"id\":");
    AppendId(&out, 'e', stats_.events);
    out.append(",\"type\":");
    AppendJsonString(&out, TypeName(e.type));
    out.append(",\"ts\":");
    fmt::format_to(std::back_inserter(out), "{}", e.ts);
    out.append(",\"user_id\":");
    AppendId(&out, 'u', e.user);
    out.append(",\"card_id\":");
    AppendId(&out, 'c', e.user);
    out.append(",\"country\":");
    AppendJsonString(&out, kCountries[e.country]);
    switch (e.type) {
      case Type::kLogin:
        out.append(",\"device\":");
        AppendJsonString(&out, kDevices[e.detail]);
        break;
      case Type::kOrder:
      case Type::kPayment:
      case Type::kRefund:
        out.append(",\"order_id\":");
        AppendId(&out, 'o', e.order);
        out.append(",\"amount\":");
        // cents / 100.0 is the double nearest to the decimal, so its shortest
        // rendering has at most two decimals.
        AppendJsonNumber(&out, static_cast<double>(e.amount_cents) / 100.0);
        if (e.type == Type::kOrder) {
          out.append(",\"category\":");
          AppendJsonString(&out, kCategories[e.detail]);
        } else if (e.type == Type::kPayment) {
          out.append(",\"method\":");
          AppendJsonString(&out, kMethods[e.detail]);
        }
        break;
      case Type::kLogout:
      case Type::kPasswordChange:
      case Type::kPaymentMethodChange:
        break;
    }
    out.push_back('}');
    if (e.normal_payment) Remember(e);
    emit_(out);
    if (options_.malformed_rate > 0) MaybeMalformed(out);
  }

  // Bad input for tests: drawn from its own generator, so the good events do
  // not change with the rate.
  void MaybeMalformed(const std::string& last) {
    auto unit = [&] { return static_cast<double>(bad_rng_() >> 11) * 0x1.0p-53; };
    if (unit() >= options_.malformed_rate) return;
    ++stats_.malformed;
    std::string bad;
    switch (bad_rng_() % 6) {
      case 0: bad = last.substr(0, last.size() / 2); break;                     // truncated
      case 1: bad = "[" + last + "]"; break;                                     // not an object
      case 2: bad = R"({"ts":1700000000000,"user_id":"u1"})"; break;            // no type
      case 3: bad = R"({"type":"order","ts":"yesterday","user_id":"u1"})"; break;  // bad time
      case 4: bad = std::string("{\"type\":\"order\",\"ts\":1,\"user_id\":\"u\xff\xfe\"}"); break;  // bad UTF-8
      default: bad = std::string("{\"type\":\"order\",\0\"ts\":1}", 21); break;  // NUL byte
    }
    emit_(bad);
  }

  void Remember(const Event& payment) {
    if (recent_orders_.size() < kRecentOrders) {
      recent_orders_.push_back(payment);
    } else {
      recent_orders_[recent_next_] = payment;
      recent_next_ = (recent_next_ + 1) % kRecentOrders;
    }
  }

  const GenOptions& options_;
  const std::function<void(std::string_view)>& emit_;
  std::mt19937_64 bad_rng_{options_.seed ^ 0x6d616c666f726d65ULL};
  std::mt19937_64 rng_;
  int64_t users_ = 1;
  Millis mean_gap_ = 0;
  Millis out_of_order_ = 0;
  double fraud_rate_ = 0;
  double zipf_ = 1.1;
  Millis clock_ = 0;
  std::vector<double> cdf_;  // running sums of k^-zipf, k = 1..users
  MinHeap scheduled_;        // future events, keyed by ts
  MinHeap held_;             // out-of-order events, keyed by release time
  uint64_t seq_ = 0;
  int64_t orders_ = 0;
  std::vector<Event> recent_orders_;  // ring of paid normal orders, for refunds
  size_t recent_next_ = 0;
  std::string buffer_;
  GenStats stats_;
};

}  // namespace

std::string_view HomeCountryOf(int64_t user) { return kCountries[HomeCountry(user)]; }
size_t CountryCount() { return kCountries.size(); }
std::string_view CountryAt(size_t i) { return kCountries[i % kCountries.size()]; }

GenStats GenerateEvents(const GenOptions& options,
                        const std::function<void(std::string_view)>& emit) {
  return Generator(options, emit).Run();
}

}  // namespace cepheus::gen
