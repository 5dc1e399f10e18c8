// State encoding: varints, zig-zag, an event table shared by the runs.
//
// Runs of one key often share events (forks, `skip none`, and rules of one
// key field that bound the same events: a record holds every rule of a key), so the encoder
// writes each distinct event once and the runs refer to it by index; the
// decoder rebuilds the sharing, so memory after a restore matches memory
// before it.
#include "cepheus/engine/state_codec.h"

#include <cstring>
#include <functional>
#include <unordered_map>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"

namespace cepheus::engine {
namespace {

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void PutSigned(std::string* out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

// Writing into room reserved beforehand: no capacity check per byte.
char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
char* PutSigned(char* p, int64_t v) {
  return PutVarint(p, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
char* PutString(char* p, std::string_view s) {
  p = PutVarint(p, s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
constexpr size_t kMaxVarint = 10;
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

class Reader {
 public:
  explicit Reader(std::string_view* in) : in_(in) {}
  bool ok() const { return ok_; }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_->empty()) return Fail();
      uint8_t b = static_cast<uint8_t>(in_->front());
      in_->remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return Fail();
  }
  int64_t Signed() {
    uint64_t u = Varint();
    return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  // An event time: within the range the decoder accepts (so that adding a
  // window to it cannot overflow); anything else is a damaged record.
  Millis Time() {
    Millis t = Signed();
    if (t > kMaxTime / 2 || t < kMinTime / 2) return Fail();
    return t;
  }
  // A watermark: an event time, or one of the two sentinels.
  Millis Watermark() {
    Millis t = Signed();
    if (t != kMinTime && t != kMaxTime && (t > kMaxTime / 2 || t < kMinTime / 2)) return Fail();
    return t;
  }
  std::string_view String() {
    uint64_t n = Varint();
    if (!ok_ || n > in_->size()) {
      Fail();
      return {};
    }
    std::string_view s = in_->substr(0, n);
    in_->remove_prefix(n);
    return s;
  }
  uint8_t Byte() {
    if (in_->empty()) return static_cast<uint8_t>(Fail());
    uint8_t b = static_cast<uint8_t>(in_->front());
    in_->remove_prefix(1);
    return b;
  }
  uint64_t Fixed64() {
    if (in_->size() < 8) return Fail();
    uint64_t v;
    std::memcpy(&v, in_->data(), 8);
    in_->remove_prefix(8);
    return v;
  }

 private:
  uint64_t Fail() {
    ok_ = false;
    in_->remove_prefix(in_->size());
    return 0;
  }
  std::string_view* in_;
  bool ok_ = true;
};

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

Status Engine::PutMeta(StateStore* store) const {
  std::string meta;
  PutSigned(&meta, watermark_);
  PutSigned(&meta, max_ts_);
  PutVarint(&meta, arrival_);
  PutVarint(&meta, seq_);
  if (Status st = store->Put("engine/meta", meta); !st.ok()) return st;
  std::string buf;
  auto copy = buffer_;
  PutVarint(&buf, copy.size());
  while (!copy.empty()) {
    EncodeEvent(*copy.top().e, &buf);
    copy.pop();
  }
  return store->Put("engine/buffer", buf);
}

// Writes the record of one key: a section per rule that needs its state kept.
// The key and the value are built in buffers kept by the engine.
Status Engine::PutKey(StateStore* store, uint32_t group, std::string_view key, const KeyEntry* entry,
                      bool* wrote) {
  const KeyGroup& g = groups_[group];
  save_key_.assign("engine/g/");
  save_key_.append(g.field);
  save_key_.push_back('\0');
  save_key_.append(key);
  *wrote = false;
  if (entry != nullptr) {
    save_rules_.clear();
    for (size_t i = 0; i < g.rules.size(); ++i) {
      const RuleState& rs = states_[g.rules[i]];
      if (Needed(*rs.program, entry->rules[i].runs, watermark_)) {
        save_rules_.push_back(RuleRuns{rs.program, &entry->rules[i].runs, &rs.matcher});
      }
    }
    if (!save_rules_.empty()) {
      save_value_.clear();
      EncodeKeyRecord(save_rules_, &save_value_);
      *wrote = true;
      return store->Put(save_key_, save_value_);
    }
  }
  return store->Delete(save_key_);
}

Status Engine::Save(StateStore* store) {
  std::vector<std::string> old;
  Status st = store->Scan("engine/", [&](std::string_view k, std::string_view) { old.emplace_back(k); });
  if (!st.ok()) return st;
  for (const auto& k : old) {
    if (Status d = store->Delete(k); !d.ok()) return d;
  }
  if (st = PutMeta(store); !st.ok()) return st;
  for (uint32_t g = 0; g < groups_.size(); ++g) {
    for (uint32_t id : groups_[g].index) {
      KeyEntry& entry = entries_[id];
      entry.stored = false;
      bool any = false;
      for (size_t i = 0; i < groups_[g].rules.size() && !any; ++i) {
        any = Needed(*states_[groups_[g].rules[i]].program, entry.rules[i].runs, watermark_);
      }
      if (!any) continue;  // no record, and no delete of one the store does not hold
      if (st = PutKey(store, g, entry.key, &entry, &entry.stored); !st.ok()) return st;
    }
  }
  for (auto [id, gen] : dirty_) {
    if (entries_[id].generation == gen) entries_[id].dirty = false;
  }
  dirty_.clear();
  forgotten_.clear();
  return Status::Ok();
}

// Only what changed: the records of keys freed since the last save are
// deleted, those of touched keys written, or deleted when no rule needs them
// any more. A key the store holds no record of is not deleted.
Status Engine::SaveChanges(StateStore* store) {
  if (Status st = PutMeta(store); !st.ok()) return st;
  bool wrote = false;
  for (const auto& [group, key] : forgotten_) {
    if (Status st = PutKey(store, group, key, nullptr, &wrote); !st.ok()) return st;
  }
  forgotten_.clear();
  for (auto [id, gen] : dirty_) {
    KeyEntry& entry = entries_[id];
    if (entry.generation != gen) continue;  // forgotten since, deleted above
    entry.dirty = false;
    const KeyGroup& group = groups_[entry.group];
    bool any = false;
    for (size_t i = 0; i < group.rules.size() && !any; ++i) {
      any = Needed(*states_[group.rules[i]].program, entry.rules[i].runs, watermark_);
    }
    if (!any && !entry.stored) continue;
    if (Status st = PutKey(store, entry.group, entry.key, &entry, &entry.stored); !st.ok()) return st;
  }
  dirty_.clear();
  return Status::Ok();
}

// Load, in parts: the meta record, the reorder buffer, one key's record.
// What the records hold is in STATE_FORMAT.md.
Status Engine::Load(const StateStore& store, EventDecoder* decoder, LoadReport* report) {
  for (auto& g : groups_) g.index.clear();
  entries_.clear();
  free_entries_.clear();
  dirty_.clear();
  forgotten_.clear();
  timers_ = {};
  for (auto& d : deadlines_) d.clear();
  buffer_ = {};
  for (auto& r : stats_.rules) r.runs = 0;
  Status result;
  std::vector<uint32_t> loaded;
  Status st = store.Scan("engine/", [&](std::string_view k, std::string_view v) {
    if (!result.ok()) return;
    if (k == "engine/meta") {
      result = LoadMeta(v);
    } else if (k == "engine/buffer") {
      result = LoadBuffer(v, decoder);
    } else if (k.substr(0, 9) == "engine/k/") {
      // A record of format version 1 (one per rule and key): not loaded.
      CountDropped(report, CountStoredRuns(v), false);
      if (report) report->stale_keys.emplace_back(k);
    } else if (k.substr(0, 9) == "engine/g/") {
      result = LoadKey(k, v, decoder, report, &loaded);
    }
  });
  if (!st.ok()) return st;
  // Keys load in key order; closings must come in deadline order.
  for (auto& d : deadlines_) {
    std::stable_sort(d.begin(), d.end(), [](const Deadline& a, const Deadline& b) { return a.at < b.at; });
  }
  for (uint32_t id : loaded) MaybeForget(id, watermark_);
  return result;
}

void Engine::CountDropped(LoadReport* report, uint64_t runs, bool removed) {
  if (!report) return;
  ++report->keys_dropped;
  (removed ? report->runs_removed : report->runs_changed) += runs;
}

Status Engine::LoadMeta(std::string_view v) {
  std::string_view in = v;
  Reader r(&in);
  watermark_ = r.Watermark();
  max_ts_ = r.Watermark();
  arrival_ = r.Varint();
  seq_ = r.Varint();
  return r.ok() ? Status::Ok() : Status::Corruption("bad engine/meta");
}

Status Engine::LoadBuffer(std::string_view v, EventDecoder* decoder) {
  std::string_view in = v;
  Reader r(&in);
  uint64_t n = r.Varint();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    auto ev = DecodeEvent(&in, decoder);
    if (!ev.ok()) return ev.status();
    buffer_.push(Buffered(std::move(ev).value()));
  }
  return Status::Ok();
}

// One key's record ("engine/g/<field>\0<key>"): the state of each rule still
// keyed on that field and unchanged is loaded, with its closings; the rest is
// counted as dropped, and the key rewritten (or forgotten) at the next save.
Status Engine::LoadKey(std::string_view k, std::string_view v, EventDecoder* decoder, LoadReport* report,
                       std::vector<uint32_t>* loaded) {
  std::string_view rest = k.substr(9);
  size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) return Status::Corruption("bad state key");
  std::string_view field = rest.substr(0, nul), key = rest.substr(nul + 1);
  uint32_t g = 0;
  while (g < groups_.size() && groups_[g].field != field) ++g;
  // The rule a section belongs to, if it is still keyed on this field.
  auto rule_of = [&](std::string_view name) -> int {
    if (g == groups_.size()) return -1;
    for (uint32_t pos = 0; pos < groups_[g].rules.size(); ++pos) {
      if (states_[groups_[g].rules[pos]].program->name == name) return static_cast<int>(pos);
    }
    return -1;
  };
  auto rec = DecodeKeyRecord(v, decoder, [&](std::string_view name) -> const nfa::Program* {
    int pos = rule_of(name);
    return pos < 0 ? nullptr : states_[groups_[g].rules[static_cast<size_t>(pos)]].program;
  });
  if (!rec.ok()) return rec.status();
  uint32_t id = UINT32_MAX;
  bool dropped = false;
  for (auto& sr : rec.value()) {
    int pos = rule_of(sr.rule);
    if (!sr.loaded) {
      CountDropped(report, sr.stored_runs, pos < 0);  // the rule changed or is gone: its partial matches go
      dropped = true;
      continue;
    }
    if (id == UINT32_MAX) {
      id = NewEntry(g, key);
      loaded->push_back(id);
    }
    uint32_t r = groups_[g].rules[static_cast<size_t>(pos)];
    RuleState& rs = states_[r];
    KeyState& ks = entries_[id].rules[rs.pos];
    ks.runs = std::move(sr.runs);
    stats_.rules[r].runs += static_cast<int64_t>(ks.runs.runs.size());
    if (rs.silent) {
      if (!ks.runs.empty()) {
        ks.armed_at = rs.matcher.NextDeadline(ks.runs);
        deadlines_[r].push_back(Deadline{ks.armed_at, id, entries_[id].generation});
      }
    } else {
      for (const auto& run : ks.runs.runs) {
        deadlines_[r].push_back(Deadline{run.first_ts + rs.program->within, id, entries_[id].generation});
      }
    }
    Schedule(id, r, watermark_);
  }
  if (id == UINT32_MAX) {
    if (report && dropped) report->stale_keys.emplace_back(k);  // nothing of it is kept
  } else {
    entries_[id].stored = true;
    if (dropped) MarkDirty(id);  // rewritten without the dropped rules at the next save
  }
  return Status::Ok();
}

}  // namespace cepheus::engine
