// Rekeyer: per event, a test of its type id against each stage's forwarded
// types, the key's text, one hash, one ProduceTo; per commit, one mark per
// stage partition and input partition whose watermark moved.
#include "daemon/rekeyer.h"

#include <utility>

#include <xxhash.h>

#include "cepheus/engine/source_marks.h"

namespace cepheus::daemon {

Rekeyer::Rekeyer(Plan plan, std::vector<int32_t> partitions, io::TxnProducer* producer)
    : plan_(std::move(plan)), partitions_(std::move(partitions)), producer_(producer), counts_(plan_.stages.size()) {}

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
    if (Status st = producer_->ProduceTo(stage.topic, partition, key_, e.raw); !st.ok()) return st;
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

std::vector<Rekeyer::Counts> Rekeyer::TakeCounts() {
  return std::exchange(counts_, std::vector<Counts>(plan_.stages.size()));
}

}  // namespace cepheus::daemon
