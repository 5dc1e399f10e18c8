// Event time across a re-keying hop (section 6.4 of the rule-language spec).
//
// A partition of a re-keying topic receives events from every partition of
// the input (its sources), each source in its own order. Each source also
// writes, now and then, its own watermark into every partition of the topic
// (a mark record). The partition's watermark is the least of its sources'
// latest marks: no source will send an event older than its mark that is
// not late at the source already, so no on-time event is late after the hop.
// A source that never sent a mark holds the watermark at kMinTime; a source
// idle past events.idle_timeout lets its own watermark follow the wall clock
// (as in v1) and so stops holding this one back.
//
//   engine::SourceMarks marks({"events/0", "events/1"});
//   marks.Mark("events/0", 5000);   // watermark() stays kMinTime
//   marks.Mark("events/1", 3000);   // watermark() == 3000
//   engine.AdvanceWatermark(marks.watermark());
//
// Thread-safety: none.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/common/time.h"

namespace cepheus::engine {

class SourceMarks {
 public:
  // `sources`: every source expected to feed the partition ("topic/partition").
  explicit SourceMarks(std::vector<std::string> sources = {});

  // Records `source`'s mark. Marks only rise: a lower one (a source that
  // moved to another daemon and started again from a committed point) is
  // kept at the higher. A source not expected is added.
  void Mark(std::string_view source, Millis mark);
  // The least mark over the expected sources and any added; kMinTime while
  // some source has sent none.
  Millis watermark() const;
  size_t sources() const { return marks_.size(); }

  // The marks as text, one "source<TAB>mark" a line, for the state store;
  // Decode reads it back over the expected sources (a stored source no
  // longer expected is kept: it may still send).
  std::string Encode() const;
  Status Decode(std::string_view text);

 private:
  std::map<std::string, Millis, std::less<>> marks_;  // kMinTime: none yet
};

// A mark record's value: a NUL byte (no JSON text starts with one, so no
// event is ever taken for a mark), "cepheus-mark", the source and the mark,
// separated by tabs.
std::string EncodeMarkRecord(std::string_view source, Millis mark);
bool IsMarkRecord(std::string_view value);
// The source and mark of a mark record; InvalidArgument when damaged.
Result<std::pair<std::string, Millis>> ParseMarkRecord(std::string_view value);

}  // namespace cepheus::engine
