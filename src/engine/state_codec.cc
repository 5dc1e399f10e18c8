// State encoding: varints, zig-zag, an event table shared by the runs.
//
// Runs of one key often share events (forks, `skip none`, and rules of one
// key field that bound the same events: a record holds every rule of a key), so the encoder
// writes each distinct event once and the runs refer to it by index; the
// decoder rebuilds the sharing, so memory after a restore matches memory
// before it. Pure encoding and decoding: what the engine saves and loads, and
// when, is in persist.cc; the bytes' primitives in state_format.h.
#include "cepheus/engine/state_codec.h"

#include <cstring>
#include <functional>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/state_format.h"

namespace cepheus::engine {
namespace {

// The most bytes EncodeEvent writes for `e`.
size_t EventBound(const nfa::Event& e) { return 7 * kMaxVarint + e.pos.topic.size() + e.raw.size(); }
char* EncodeEventAt(const nfa::Event& e, char* p) {
  p = PutSigned(p, e.ts);
  p = PutVarint(p, e.seq);
  p = PutVarint(p, e.arrival);
  p = PutString(p, e.pos.topic);
  p = PutSigned(p, e.pos.partition);
  p = PutSigned(p, e.pos.offset);
  return PutString(p, e.raw);
}

}  // namespace

void EncodeEvent(const nfa::Event& e, std::string* out) {
  size_t at = out->size();
  out->resize(at + EventBound(e));
  char* end = EncodeEventAt(e, out->data() + at);
  out->resize(static_cast<size_t>(end - out->data()));
}

Result<nfa::EventRef> DecodeEvent(std::string_view* in, EventDecoder* decoder) {
  Reader r(in);
  Millis ts = r.Time();
  uint64_t seq = r.Varint();
  uint64_t arrival = r.Varint();
  nfa::Position pos;
  pos.topic = std::string(r.String());
  pos.partition = static_cast<int32_t>(r.Signed());
  pos.offset = r.Signed();
  std::string_view raw = r.String();
  if (!r.ok()) return Status::Corruption("truncated event in state");
  auto ev = decoder->Decode(raw, pos);
  if (!ev.ok()) return Status::Corruption("stored event no longer decodes: " + ev.status().message());
  (*ev)->ts = ts;
  (*ev)->seq = seq;
  (*ev)->arrival = arrival;
  return ev;
}

namespace {

// Skips one encoded event (its fields, not its JSON).
void SkipEvent(Reader& r) {
  r.Signed();
  r.Varint();
  r.Varint();
  r.String();
  r.Signed();
  r.Signed();
  r.String();
}

// Reads the runs of one section into `k` (when not null: the section's rule
// is `p`), or only walks over them.
Status ReadRuns(Reader& r, size_t limit, const nfa::Program* p,
                const std::vector<nfa::EventRef>* table, nfa::KeyRuns* k, uint64_t* n_out) {
  uint64_t n_runs = r.Varint();
  if (!r.ok() || n_runs > limit) return Status::Corruption("bad run count in state");
  *n_out = n_runs;
  for (uint64_t i = 0; i < n_runs; ++i) {
    nfa::Run run;
    run.start_seq = r.Varint();
    run.step = static_cast<int32_t>(r.Varint());
    run.count = static_cast<int32_t>(r.Varint());
    run.contiguous = r.Byte() != 0;
    run.first_ts = r.Time();
    run.last_ts = r.Time();
    run.last_seq = r.Varint();
    uint64_t n = r.Varint();
    if (!r.ok() || n == 0 || n > limit ||
        (p != nullptr && (run.step < 0 || static_cast<size_t>(run.step) >= p->steps.size()))) {
      return Status::Corruption("run does not fit the rule's steps");
    }
    for (uint64_t j = 0; j < n; ++j) {
      uint64_t step = r.Varint();
      uint64_t idx = r.Varint();
      if (!r.ok()) return Status::Corruption("bad binding in state");
      if (p == nullptr) continue;
      if (idx >= table->size() || step >= p->steps.size()) return Status::Corruption("bad binding in state");
      run.bound.push_back(nfa::Bound{(*table)[idx], static_cast<int32_t>(step)});
    }
    if (p == nullptr) continue;
    nfa::Matcher(p).RebuildAggregates(&run);
    k->runs.push_back(std::move(run));
  }
  return Status::Ok();
}

// Version 1 (one record per rule and key), read only to count what an
// upgrade drops.
uint64_t CountV1Runs(Reader& r) {
  r.Fixed64();
  r.Byte();
  r.Signed();
  r.Varint();
  r.Signed();
  uint64_t n_events = r.Varint();
  for (uint64_t i = 0; i < n_events && r.ok(); ++i) SkipEvent(r);
  uint64_t n_runs = r.Varint();
  return r.ok() ? n_runs : 0;
}

}  // namespace

namespace {

// The event table of a key record: runs share events (a fork, runs of
// `any{3}` that overlap, and rules of one key that bound the same event),
// mostly with the run just before, so a small table is searched from its
// end; a large one gets a hash index. `bound` sums the most bytes the record
// can take. Reused between calls.
struct RecordTable {
  static constexpr size_t kLinear = 32;
  std::vector<const nfa::Event*> table;
  std::vector<uint32_t> refs;  // the table index of every binding, in order
  std::unordered_map<const nfa::Event*, uint32_t> index;
  size_t bound = 0;

  void Clear() {
    table.clear();
    refs.clear();
    index.clear();
    bound = 1 + 2 * kMaxVarint;  // version, table size, rule count
  }
  void Bind(const nfa::Event* e) {
    uint32_t idx = static_cast<uint32_t>(table.size());
    if (table.size() <= kLinear) {
      for (size_t i = table.size(); i-- > 0;) {
        if (table[i] == e) {
          idx = static_cast<uint32_t>(i);
          break;
        }
      }
      if (idx == table.size() && table.size() == kLinear) {
        for (uint32_t i = 0; i < table.size(); ++i) index.emplace(table[i], i);
      }
    } else {
      idx = index.emplace(e, idx).first->second;
    }
    if (idx == table.size()) {
      table.push_back(e);
      bound += EventBound(*e);
      if (table.size() > kLinear) index.emplace(e, idx);
    }
    refs.push_back(idx);
  }
  // Binds every event of one rule's runs (those of a shared buffer, given as
  // Runs, then the key's Runs, then the runs a prefix holds implicitly).
  void BindRule(const RuleRuns& rr, const std::vector<nfa::Run>& suffix) {
    constexpr size_t kRunBound = 1 + 7 * kMaxVarint;
    bound += rr.program->name.size() + 8 + 1 + 5 * kMaxVarint;
    auto bind_run = [&](const nfa::Run& run) {
      for (const auto& b : run.bound) Bind(b.event.get());
      bound += kRunBound + 2 * kMaxVarint * run.bound.size();
    };
    for (const auto& run : suffix) bind_run(run);
    for (const auto& run : rr.runs->runs) bind_run(run);
    // The runs a prefix holds implicitly are written as the Runs they stand
    // for (Matcher::Materialize): the one started by events[i] is at step 0,
    // contiguous, bound to events[i..n-1].
    const nfa::PrefixRuns& pr = rr.runs->prefix;
    for (int i = 0; i < pr.n; ++i) {
      if (!(pr.alive >> i & 1)) continue;
      for (int j = i; j < pr.n; ++j) Bind(pr.events[j].get());
      bound += kRunBound + 2 * kMaxVarint * static_cast<size_t>(pr.n - i);
    }
  }
};

char* PutRunHeader(char* w, uint64_t start_seq, int32_t step, int32_t count, bool contiguous, Millis first_ts,
                   Millis last_ts, uint64_t last_seq, size_t n_bound) {
  w = PutVarint(w, start_seq);
  w = PutVarint(w, static_cast<uint64_t>(step));
  w = PutVarint(w, static_cast<uint64_t>(count));
  *w++ = contiguous ? 1 : 0;
  w = PutSigned(w, first_ts);
  w = PutSigned(w, last_ts);
  w = PutVarint(w, last_seq);
  return PutVarint(w, n_bound);
}

// One rule's section, its bindings taken from `refs` from *ref on, in the
// order RecordTable::BindRule bound them.
char* PutRuleSection(char* w, const RuleRuns& rr, const std::vector<nfa::Run>& suffix,
                     const std::vector<uint32_t>& refs, size_t* ref) {
  const nfa::Program* p = rr.program;
  const nfa::KeyRuns* k = rr.runs;
  w = PutString(w, p->name);
  std::memcpy(w, &p->fingerprint, 8);
  w += 8;
  *w++ = k->alerted ? 1 : 0;
  w = PutSigned(w, k->last_alert);
  w = PutVarint(w, 0);  // reserved (was start_barrier)
  w = PutSigned(w, 0);  // reserved (was barrier_until)
  w = PutVarint(w, k->size());
  auto put_run = [&](const nfa::Run& run) {
    w = PutRunHeader(w, run.start_seq, run.step, run.count, run.contiguous, run.first_ts, run.last_ts,
                     run.last_seq, run.bound.size());
    for (const auto& b : run.bound) {
      w = PutVarint(w, static_cast<uint64_t>(b.step));
      w = PutVarint(w, refs[(*ref)++]);
    }
  };
  for (const auto& run : suffix) put_run(run);
  for (const auto& run : k->runs) put_run(run);
  const nfa::PrefixRuns& pr = k->prefix;
  for (int i = 0; i < pr.n; ++i) {
    if (!(pr.alive >> i & 1)) continue;
    const nfa::Event& first = *pr.events[i];
    const nfa::Event& last = *pr.events[pr.n - 1];
    w = PutRunHeader(w, first.seq, 0, pr.n - i, true, first.ts, last.ts, last.seq, static_cast<size_t>(pr.n - i));
    for (int j = i; j < pr.n; ++j) {
      w = PutVarint(w, 0);
      w = PutVarint(w, refs[(*ref)++]);
    }
  }
  return w;
}

}  // namespace

// Two passes: bind every event of every section into the table (and bound
// the record's size), then write the table and the sections in one buffer.
void EncodeKeyRecord(const std::vector<RuleRuns>& rules, std::string* out) {
  thread_local RecordTable t;
  t.Clear();
  // Runs held in a shared buffer (Program::suffix) are written as the Runs
  // they stand for; they come before the key's Runs (there are none while the
  // buffer is used).
  thread_local std::vector<std::vector<nfa::Run>> suffix_runs;
  suffix_runs.resize(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    suffix_runs[i].clear();
    if (!rules[i].runs->suffix) continue;
    if (rules[i].matcher != nullptr) {
      rules[i].matcher->SuffixAsRuns(*rules[i].runs, &suffix_runs[i]);
    } else {
      nfa::Matcher(rules[i].program).SuffixAsRuns(*rules[i].runs, &suffix_runs[i]);
    }
  }
  for (size_t i = 0; i < rules.size(); ++i) t.BindRule(rules[i], suffix_runs[i]);
  size_t at = out->size();
  out->resize(at + t.bound);
  char* w = out->data() + at;
  *w++ = static_cast<char>(kStateFormatVersion);
  w = PutVarint(w, t.table.size());
  for (const auto* e : t.table) w = EncodeEventAt(*e, w);
  w = PutVarint(w, rules.size());
  size_t ref = 0;
  for (size_t i = 0; i < rules.size(); ++i) w = PutRuleSection(w, rules[i], suffix_runs[i], t.refs, &ref);
  out->resize(static_cast<size_t>(w - out->data()));
  for (auto& runs : suffix_runs) runs.clear();  // they hold references to events
}

Result<std::vector<StoredRule>> DecodeKeyRecord(
    std::string_view bytes, EventDecoder* decoder,
    const std::function<const nfa::Program*(std::string_view rule)>& program_of) {
  std::string_view in = bytes;
  Reader r(&in);
  uint8_t version = r.Byte();
  if (!r.ok() || version != kStateFormatVersion) return Status::Corruption("unknown state format version");
  // The event table: located now, decoded only if some section is loaded.
  uint64_t n_events = r.Varint();
  if (!r.ok() || n_events > bytes.size()) return Status::Corruption("bad event count in state");
  std::vector<std::string_view> spans;
  spans.reserve(n_events);
  for (uint64_t i = 0; i < n_events; ++i) {
    const char* from = in.data();
    SkipEvent(r);
    if (!r.ok()) return Status::Corruption("truncated event in state");
    spans.emplace_back(from, static_cast<size_t>(in.data() - from));
  }
  std::vector<nfa::EventRef> table;
  bool decoded = false;
  uint64_t n_sections = r.Varint();
  if (!r.ok() || n_sections > bytes.size()) return Status::Corruption("bad rule count in state");
  std::vector<StoredRule> out;
  out.reserve(n_sections);
  for (uint64_t s = 0; s < n_sections; ++s) {
    StoredRule& sr = out.emplace_back();
    sr.rule = std::string(r.String());
    sr.fingerprint = r.Fixed64();
    const nfa::Program* p = r.ok() ? program_of(sr.rule) : nullptr;
    sr.loaded = p != nullptr && p->fingerprint == sr.fingerprint;
    if (sr.loaded && !decoded) {
      table.reserve(n_events);
      for (std::string_view span : spans) {
        auto ev = DecodeEvent(&span, decoder);
        if (!ev.ok()) return ev.status();
        table.push_back(std::move(ev).value());
      }
      decoded = true;
    }
    sr.runs.alerted = r.Byte() != 0;
    sr.runs.last_alert = r.Time();
    r.Varint();  // reserved: a barrier kept by versions that judged past_last by arrival
    r.Signed();
    if (!r.ok()) return Status::Corruption("truncated rule state");
    Status st = ReadRuns(r, bytes.size(), sr.loaded ? p : nullptr, &table, &sr.runs, &sr.stored_runs);
    if (!st.ok()) return st;
  }
  if (!r.ok() || !in.empty()) return Status::Corruption("trailing or truncated bytes in state");
  return out;
}

uint64_t CountStoredRuns(std::string_view bytes) {
  std::string_view in = bytes;
  Reader r(&in);
  uint8_t version = r.Byte();
  if (version == 1) return CountV1Runs(r);
  if (version != kStateFormatVersion) return 0;
  uint64_t n_events = r.Varint();
  for (uint64_t i = 0; i < n_events && r.ok(); ++i) SkipEvent(r);
  uint64_t n_sections = r.Varint(), total = 0;
  for (uint64_t s = 0; s < n_sections && r.ok(); ++s) {
    r.String();
    r.Fixed64();
    r.Byte();
    r.Signed();
    r.Varint();
    r.Signed();
    uint64_t n = 0;
    if (!ReadRuns(r, bytes.size(), nullptr, nullptr, nullptr, &n).ok()) return 0;
    total += n;
  }
  return r.ok() ? total : 0;
}

Result<nfa::KeyRuns> DecodeKeyRuns(std::string_view bytes, const nfa::Program& p, EventDecoder* decoder) {
  auto rec = DecodeKeyRecord(bytes, decoder, [&](std::string_view name) { return name == p.name ? &p : nullptr; });
  if (!rec.ok()) return rec.status();
  for (auto& sr : rec.value()) {
    if (sr.rule != p.name) continue;
    if (!sr.loaded) {
      return Status::InvalidArgument(fmt::format("state was written for another version of rule '{}'", p.name));
    }
    return std::move(sr.runs);
  }
  return Status::NotFound(fmt::format("no state of rule '{}' in the record", p.name));
}

}  // namespace cepheus::engine
