// Rekeyer: per event, a test of its type id against each stage's forwarded
// types, the key's text, one hash, one ProduceTo; per commit, one mark per
// stage partition and input partition whose watermark moved.
#include "daemon/rekeyer.h"

#include <utility>

#include <charconv>
#include <iterator>

#include <fmt/format.h>
#include <xxhash.h>

#include "cepheus/engine/source_marks.h"

namespace cepheus::daemon {

Rekeyer::Rekeyer(const Plan& plan, std::vector<int32_t> partitions, io::TxnProducer* producer)
    : plan_(plan), partitions_(std::move(partitions)), producer_(producer), counts_(plan_.stages.size()) {}

int Rekeyer::StageOf(std::string_view topic) const {
  for (size_t s = 0; s < plan_.stages.size(); ++s) {
    if (plan_.stages[s].topic == topic) return static_cast<int>(s);
  }
  return -1;
}

Status Rekeyer::Forward(const nfa::Event& e) {
  for (size_t s = 0; s < plan_.stages.size(); ++s) {
    const RekeyStage& stage = plan_.stages[s];
    if (!stage.Forwards(e.type_id)) continue;
    if (!nfa::ValueKeyText(e.fields[static_cast<size_t>(stage.key_slot)], &key_)) {
      ++counts_[s].missing_key;
      continue;
    }
    auto partition = static_cast<int32_t>(XXH3_64bits(key_.data(), key_.size()) %
                                          static_cast<uint64_t>(partitions_[s]));
    message_.assign(key_);  // in place: no allocation per event once the buffer has grown
    message_.push_back('\0');
    message_.append(e.pos.topic);
    fmt::format_to(std::back_inserter(message_), "{}{}{}{}", '\0', e.pos.partition, '\0', e.pos.offset);
    if (Status st = producer_->ProduceTo(stage.topic, partition, message_, e.raw); !st.ok()) return st;
    ++counts_[s].forwarded;
  }
  return Status::Ok();
}

Status Rekeyer::SendMarks(const std::string& source, Millis watermark) {
  const std::string mark = engine::EncodeMarkRecord(source, watermark);
  for (size_t s = 0; s < plan_.stages.size(); ++s) {
    for (int32_t p = 0; p < partitions_[s]; ++p) {
      if (Status st = producer_->ProduceTo(plan_.stages[s].topic, p, "", mark); !st.ok()) return st;
    }
  }
  return Status::Ok();
}

bool Rekeyer::OriginOf(std::string_view message_key, nfa::Position* out) {
  // From the right: the key's text may hold a NUL, a topic's name cannot.
  size_t c = message_key.rfind('\0');
  if (c == std::string_view::npos || c == 0) return false;
  size_t b = message_key.rfind('\0', c - 1);
  if (b == std::string_view::npos || b == 0) return false;
  size_t a = message_key.rfind('\0', b - 1);
  if (a == std::string_view::npos) return false;
  std::string_view partition = message_key.substr(b + 1, c - b - 1), offset = message_key.substr(c + 1);
  int32_t p = 0;
  int64_t o = 0;
  auto [pe, pc] = std::from_chars(partition.data(), partition.data() + partition.size(), p);
  auto [oe, oc] = std::from_chars(offset.data(), offset.data() + offset.size(), o);
  if (pc != std::errc() || oc != std::errc() || pe != partition.data() + partition.size() ||
      oe != offset.data() + offset.size()) {
    return false;
  }
  out->topic.assign(message_key.substr(a + 1, b - a - 1));
  out->partition = p;
  out->offset = o;
  return true;
}

std::vector<Rekeyer::Counts> Rekeyer::TakeCounts() {
  return std::exchange(counts_, std::vector<Counts>(plan_.stages.size()));
}

}  // namespace cepheus::daemon
