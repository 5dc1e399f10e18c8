// The sending side of re-keying (section 6.4): an input partition's events go
// to the re-keying topics of the stages that read their types, keyed (and
// partitioned) by each stage's field, and its watermark goes to every
// partition of every stage topic as a mark record. Everything is produced in
// the daemon's open transaction, so it commits or aborts with the input
// offsets that caused it.
//
//   Rekeyer r(plan, {4, 4}, producer);
//   r.Forward(event);                      // in the pump's check, per event
//   r.SendMarks("events/2", watermark);    // before each commit
//
// The partition of a key is XXH3-64 of its text modulo the topic's partition
// count: the same in every daemon, whatever librdkafka's partitioner. The
// message key is the key's text, then NUL, topic, NUL, partition, NUL,
// offset: the event's input position, which a stage partition gives the event
// back (OriginOf), so an alert's id names input positions, as a direct
// rule's does, whatever the stage topic's offsets.
// Thread-safety: none; the daemon's loop thread drives it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/daemon/rekey_plan.h"
#include "cepheus/io/clients.h"
#include "cepheus/nfa/value.h"

namespace cepheus::daemon {

class Rekeyer {
 public:
  struct Counts {
    uint64_t forwarded = 0;
    uint64_t missing_key = 0;  // of a forwarded type, without the stage's key field
  };

  // `plan` (the daemon's, not copied: it must outlive the Rekeyer, which is
  // made again when it changes); `partitions`: each stage's topic's
  // partition count, in plan order.
  Rekeyer(const Plan& plan, std::vector<int32_t> partitions, io::TxnProducer* producer);

  int32_t partitions(size_t stage) const { return partitions_[stage]; }
  // The stage whose topic is `topic`, or -1.
  int StageOf(std::string_view topic) const;
  // Forwards `e` (its JSON is e.raw) to every stage that reads its type.
  Status Forward(const nfa::Event& e);
  // `source`'s watermark into every partition of every stage topic.
  Status SendMarks(const std::string& source, Millis watermark);
  // Counts since the last call, by stage.
  std::vector<Counts> TakeCounts();
  // The input position a forwarded record's message key carries; false when
  // the key carries none.
  static bool OriginOf(std::string_view message_key, nfa::Position* out);

 private:
  const Plan& plan_;
  std::vector<int32_t> partitions_;
  io::TxnProducer* producer_;
  std::vector<Counts> counts_;
  std::string key_;      // scratch
  std::string message_;  // scratch: the message key
};

}  // namespace cepheus::daemon
