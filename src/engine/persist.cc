// The engine's persistence (aggregates' groups: aggregates.cc): Save writes every key's record and the meta
// (watermark, counters) and the reorder buffer (a record per event);
// SaveChanges only what changed since (records of touched keys and of newly
// buffered events, deletes of freed keys and released events); Load reads
// them back in parts (meta, one buffered event, one key's record), rebuilds the closings in deadline
// order, and drops the state of rules that changed or went, reporting it.
// The bytes of a record are the codec's (state_codec.h); the layout of the
// records is in STATE_FORMAT.md.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <xxhash.h>

#include "engine/engine_impl.h"
#include "cepheus/engine/state_codec.h"
#include "engine/state_format.h"

namespace cepheus::engine {

void StateKeyOf(std::string_view field, std::string_view key, std::string* out) {
  // XXH3-128 over the field's path, a NUL and the key: any key length fits
  // LMDB's 511-byte key limit; the key itself is in the record. Two keys
  // with one digest (about 2^-64 for 2^32 keys of a field) would share a
  // record. Hashed in one piece from a buffer kept per thread: a commit
  // computes this for every key it writes.
  thread_local std::string joined;
  joined.assign(field);
  joined.push_back('\0');
  joined.append(key);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(joined.data(), joined.size()));
  out->assign("engine/h/");
  out->append(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
}

std::string StateKeyOf(std::string_view field, std::string_view key) {
  std::string out;
  StateKeyOf(field, key, &out);
  return out;
}

Result<StoredKey> SplitStoredKey(std::string_view value) {
  std::string_view in = value;
  Reader r(&in);
  StoredKey out;
  out.field = r.String();
  out.key = r.String();
  if (!r.ok()) return Status::Corruption("bad state record: no key field and key");
  out.record = in;
  return out;
}

Status EngineImpl::PutMeta(StateStore* store) const {
  std::string meta;
  PutSigned(&meta, watermark_);
  PutSigned(&meta, max_ts_);
  PutVarint(&meta, arrival_);
  PutVarint(&meta, seq_);
  return store->Put("engine/meta", meta);
}

namespace {
// `engine/b/` and the event's arrival, big-endian: the store's order is the
// order of arrival.
void BufferKeyOf(uint64_t arrival, std::string* out) {
  out->assign("engine/b/");
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((arrival >> shift) & 0xff));
}
}  // namespace

// The reorder buffer's changes since the last save: a record for each event
// buffered since and still held (up to the `through`-th arrival), a delete
// for each saved one released since. A commit's cost grows with the events
// that came and went, not with the buffer (which, after a re-keying hop, can
// hold many seconds of a topic).
Status EngineImpl::PutBuffer(StateStore* store, uint64_t through) {
  for (uint64_t arrival : released_saved_) {
    BufferKeyOf(arrival, &save_key_);
    if (Status st = store->Delete(save_key_); !st.ok()) return st;
  }
  released_saved_.clear();
  for (const Buffered& b : buffer_.items()) {
    if (b.arrival <= saved_arrival_ || b.arrival > through) continue;
    BufferKeyOf(b.arrival, &save_key_);
    save_value_.clear();
    EncodeEvent(*b.e, &save_value_);
    if (Status st = store->Put(save_key_, save_value_); !st.ok()) return st;
  }
  saved_arrival_ = std::max(saved_arrival_, std::min(arrival_, through));
  return Status::Ok();
}

// Writes the record of one key: a section per rule that needs its state kept.
// The key and the value are built in buffers kept by the engine.
Status EngineImpl::PutKey(StateStore* store, uint32_t group, std::string_view key, const KeyEntry* entry,
                      bool* wrote) {
  const KeyGroup& g = groups_[group];
  StateKeyOf(g.field, key, &save_key_);
  *wrote = false;
  if (entry != nullptr) {
    save_rules_.clear();
    for (const auto& slot : entry->rules) {
      const RuleState& rs = states_[g.rules[slot.pos]];
      if (Needed(*rs.program, slot.state.runs, watermark_)) {
        save_rules_.push_back(RuleRuns{rs.program, &slot.state.runs, &rs.matcher});
      }
    }
    bool counters = CountersLive(*entry, watermark_);
    if (!save_rules_.empty() || counters) {
      save_value_.clear();
      PutVarint(&save_value_, g.field.size());
      save_value_.append(g.field);
      PutVarint(&save_value_, key.size());
      save_value_.append(key);
      if (counters) PutCounters(g, *entry, &save_value_);
      EncodeKeyRecord(save_rules_, &save_value_);
      *wrote = true;
      return store->Put(save_key_, save_value_);
    }
  }
  return store->Delete(save_key_);
}

// The key's counters, before its key record: a marker byte (the key record
// starts with its format version, 1 or 2), then each counter by name and
// fingerprint with its buckets.
void EngineImpl::PutCounters(const KeyGroup& g, const KeyEntry& entry, std::string* out) const {
  out->push_back(static_cast<char>(kCountersMarker));
  PutVarint(out, entry.counters.size());
  for (size_t i = 0; i < entry.counters.size(); ++i) {
    const nfa::CounterProgram& c = rules_->counters[g.counters[i]];
    PutVarint(out, c.name.size());
    out->append(c.name);
    uint64_t fp = c.counter->fingerprint;
    char b[8];
    std::memcpy(b, &fp, 8);
    out->append(b, 8);
    entry.counters[i].Encode(out);
  }
}

Status EngineImpl::Save(StateStore* store) {
  for (uint32_t g = 0; g < groups_.size() && cold_keys_ > 0; ++g) {
    for (uint32_t id : groups_[g].index) Warm(id);  // read back before engine/ is deleted
  }
  if (!cold_status_.ok()) return cold_status_;
  std::vector<std::string> old;
  Status st = store->Scan("engine/", [&](std::string_view k, std::string_view) { old.emplace_back(k); });
  if (!st.ok()) return st;
  for (const auto& k : old) {
    if (Status d = store->Delete(k); !d.ok()) return d;
  }
  if (st = PutMeta(store); !st.ok()) return st;
  saved_arrival_ = 0;  // every buffered event written again (deleted above)
  released_saved_.clear();
  if (st = PutBuffer(store, UINT64_MAX); !st.ok()) return st;
  if (st = aggregates_.Save(store); !st.ok()) return st;
  for (uint32_t g = 0; g < groups_.size(); ++g) {
    for (uint32_t id : groups_[g].index) {
      KeyEntry& entry = entries_[id];
      entry.stored = false;
      // No state: no record, and no delete of one the store does not hold.
      if (!CountersLive(entry, watermark_) && !AnyRuleNeeded(entry, watermark_)) continue;
      bool stored = false;  // a bit-field: PutKey writes a bool
      st = PutKey(store, g, entry.key, &entry, &stored);
      entry.stored = stored;
      if (!st.ok()) return st;
    }
  }
  for (auto [id, gen] : dirty_) {
    if (entries_[id].generation == gen) entries_[id].dirty = false;
  }
  dirty_.clear();
  forgotten_.clear();
  stale_.clear();  // deleted with the rest of engine/ above
  return Status::Ok();
}

// Only what changed: the records of keys freed since the last save are
// deleted, those of touched keys written, or deleted when no rule needs them
// any more. A key the store holds no record of is not deleted.
Status EngineImpl::SaveChanges(StateStore* store, uint64_t buffer_through) {
  if (Status st = PutMeta(store); !st.ok()) return st;
  if (Status st = PutBuffer(store, buffer_through); !st.ok()) return st;
  if (Status st = aggregates_.SaveChanges(store); !st.ok()) return st;
  for (const auto& k : stale_) {
    if (Status st = store->Delete(k); !st.ok()) return st;
  }
  stale_.clear();
  bool wrote = false;
  for (const auto& [group, key] : forgotten_) {
    if (Status st = PutKey(store, group, key, nullptr, &wrote); !st.ok()) return st;
  }
  forgotten_.clear();
  for (auto [id, gen] : dirty_) {
    KeyEntry& entry = entries_[id];
    if (entry.generation != gen) continue;  // forgotten since, deleted above
    entry.dirty = false;
    bool any = CountersLive(entry, watermark_) || AnyRuleNeeded(entry, watermark_);
    if (!any && !entry.stored) continue;
    bool stored = false;
    Status st = PutKey(store, entry.group, entry.key, &entry, &stored);
    entry.stored = stored;
    if (!st.ok()) return st;
  }
  dirty_.clear();
  return Status::Ok();
}

// Load, in parts: the meta record, a buffered event, one key's record.
// What the records hold is in STATE_FORMAT.md.
Status EngineImpl::Load(const StateStore& store, EventDecoder* decoder, LoadReport* report) {
  for (auto& g : groups_) g.index.clear();
  entries_.clear();
  free_entries_.clear();
  cold_keys_ = 0;
  clock_hand_ = 0;
  cold_status_ = Status::Ok();
  dirty_.clear();
  forgotten_.clear();
  stale_.clear();
  timers_ = {};
  cold_wakes_ = {};
  for (auto& d : deadlines_) d.clear();
  std::fill(cold_arms_.begin(), cold_arms_.end(), 0);
  buffer_ = {};
  released_saved_.clear();
  aggregates_.Clear();
  std::fill(stats_.counter_keys.begin(), stats_.counter_keys.end(), 0);
  bool one_record_buffer = false;
  for (auto& r : stats_.rules) r.runs = 0;
  Status result;
  std::vector<uint32_t> loaded;
  // The meta first (it sorts after the keys), so that each key is settled as
  // it is loaded: freed when nothing of it is needed at the watermark, and
  // let go from memory past max_resident_keys (it is in the store), so a
  // restore holds no more keys in memory than the engine then keeps.
  auto meta = store.Get("engine/meta");
  if (!meta.ok()) return meta.status();
  if (meta.value().has_value()) {
    if (Status m = LoadMeta(*meta.value()); !m.ok()) return m;
  }
  size_t settled = 0;
  auto settle = [&] {
    for (; settled < loaded.size(); ++settled) {
      const uint32_t id = loaded[settled];
      MaybeForget(id, watermark_);
      if (Evictable(entries_[id]) && ResidentExcess() > 0) {
        Evict(id);
        CompactColdArms();
      }
    }
  };
  Status st = store.Scan("engine/", [&](std::string_view k, std::string_view v) {
    if (!result.ok()) return;
    result = LoadRecord(k, v, decoder, report, &loaded, &one_record_buffer);
    if (result.ok()) settle();
  });
  if (!st.ok()) return st;
  saved_arrival_ = one_record_buffer ? 0 : arrival_;
  // Keys load in key order; closings must come in deadline order.
  for (auto& d : deadlines_) {
    std::stable_sort(d.begin(), d.end(), [](const Deadline& a, const Deadline& b) { return a.at < b.at; });
  }
  if (report) report->stale_keys = stale_;
  return result;
}

// One record of Load's scan (the meta is loaded first, and again here).
Status EngineImpl::LoadRecord(std::string_view k, std::string_view v, EventDecoder* decoder, LoadReport* report,
                              std::vector<uint32_t>* loaded, bool* one_record_buffer) {
  if (k == "engine/meta") return LoadMeta(v);
  if (k.substr(0, 9) == "engine/a/") {
    bool stale = false;
    Status st = aggregates_.Load(k, v, &stale);
    if (stale) stale_.emplace_back(k);
    return st;
  }
  if (k.substr(0, 9) == "engine/b/") {
    std::string_view in = v;
    auto ev = DecodeEvent(&in, decoder);
    if (ev.ok()) buffer_.push(Buffered(std::move(ev).value()));
    return ev.status();
  }
  if (k == "engine/buffer") {
    // The whole buffer in one record, as written before v2's re-keying:
    // loaded, then written as one record per event and deleted.
    *one_record_buffer = true;
    stale_.emplace_back(k);
    return LoadBuffer(v, decoder);
  }
  if (k.substr(0, 9) == "engine/k/") {
    // A record of format version 1 (one per rule and key): not loaded.
    CountDropped(report, CountStoredRuns(v), false);
    stale_.emplace_back(k);
    return Status::Ok();
  }
  if (k.substr(0, 9) == "engine/h/") {
    auto sk = SplitStoredKey(v);
    if (!sk.ok()) return sk.status();
    return LoadKey(k, sk.value().field, sk.value().key, sk.value().record, decoder, report, loaded);
  }
  if (k.substr(0, 9) == "engine/g/") {
    // Written before keys were digests (the key inside the store key):
    // loaded, then moved (rewritten under its digest at the next save, the
    // old record deleted with the stale ones).
    std::string_view rest = k.substr(9);
    size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) return Status::Corruption("bad state key");
    const size_t was_loaded = loaded->size(), was_stale = stale_.size();
    Status st = LoadKey(k, rest.substr(0, nul), rest.substr(nul + 1), v, decoder, report, loaded);
    if (!st.ok()) return st;
    if (stale_.size() == was_stale) stale_.emplace_back(k);
    if (loaded->size() > was_loaded) MarkDirty(loaded->back());
  }
  return Status::Ok();
}

void EngineImpl::CountDropped(LoadReport* report, uint64_t runs, bool removed) {
  if (!report) return;
  ++report->keys_dropped;
  (removed ? report->runs_removed : report->runs_changed) += runs;
}

Status EngineImpl::LoadMeta(std::string_view v) {
  std::string_view in = v;
  Reader r(&in);
  watermark_ = r.Watermark();
  max_ts_ = r.Watermark();
  arrival_ = r.Varint();
  seq_ = r.Varint();
  return r.ok() ? Status::Ok() : Status::Corruption("bad engine/meta");
}

Status EngineImpl::LoadBuffer(std::string_view v, EventDecoder* decoder) {
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

// One key's record (store key `k`, the key field's path and the key, the
// record's bytes): the state of each rule still keyed on that field and
// unchanged is loaded, with its closings; the rest is counted as dropped, and
// the key rewritten (or forgotten) at the next save.
Status EngineImpl::LoadKey(std::string_view k, std::string_view field, std::string_view key, std::string_view v,
                           EventDecoder* decoder, LoadReport* report, std::vector<uint32_t>* loaded) {
  uint32_t g = 0;
  while (g < groups_.size() && groups_[g].field != field) ++g;
  if (g < groups_.size() && !groups_[g].enabled) g = static_cast<uint32_t>(groups_.size());  // run elsewhere
  std::vector<std::pair<uint32_t, CounterState>> counters;  // (counter index, state) still declared as written
  bool counters_dropped = false;
  auto rec = DecodeKey(g, v, decoder, &counters, &counters_dropped);
  if (!rec.ok()) return rec.status();
  uint32_t id = UINT32_MAX;
  bool dropped = false;
  for (auto& sr : rec.value()) {
    int pos = RuleOf(g, sr.rule);
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
    KeyState& ks = entries_[id].rules.Get(rs.pos);
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
  for (auto& [c, state] : counters) {
    if (id == UINT32_MAX) {
      id = NewEntry(g, key);
      loaded->push_back(id);
    }
    KeyEntry& entry = entries_[id];
    if (entry.counters.empty()) entry.counters.resize(groups_[g].counters.size());
    if (state.newest() != INT64_MIN) ++stats_.counter_keys[c];
    entry.counters[counter_pos_[c]] = std::move(state);
  }
  if (id != UINT32_MAX && !counters.empty()) ArmCounterWake(id, kMinTime);
  dropped = dropped || counters_dropped;
  if (id == UINT32_MAX) {
    if (dropped) stale_.emplace_back(k);  // nothing of it is kept
  } else {
    entries_[id].stored = true;
    if (dropped) MarkDirty(id);  // rewritten without the dropped rules at the next save
  }
  return Status::Ok();
}

// A key record of group g: its counters (those still declared with the same
// text into *counters; *counters_dropped when some are not) and its rule
// sections (each loaded when its rule is still keyed on g's field, with the
// same text).
Result<std::vector<StoredRule>> EngineImpl::DecodeKey(uint32_t g, std::string_view v, EventDecoder* decoder,
                                                      std::vector<std::pair<uint32_t, CounterState>>* counters,
                                                      bool* counters_dropped) {
  if (!v.empty() && static_cast<uint8_t>(v[0]) == kCountersMarker) {
    v.remove_prefix(1);
    if (Status st = LoadCounters(&v, g, counters, counters_dropped); !st.ok()) return st;
  }
  return DecodeKeyRecord(v, decoder, [&](std::string_view name) -> const nfa::Program* {
    int pos = RuleOf(g, name);
    return pos < 0 ? nullptr : states_[groups_[g].rules[static_cast<size_t>(pos)]].program;
  });
}

// The rule a section belongs to, if it is still keyed on group g's field.
int EngineImpl::RuleOf(uint32_t g, std::string_view name) const {
  if (g >= groups_.size()) return -1;
  for (uint32_t pos = 0; pos < groups_[g].rules.size(); ++pos) {
    if (states_[groups_[g].rules[pos]].program->name == name) return static_cast<int>(pos);
  }
  return -1;
}

// The counters section of a key record (PutCounters): the states of
// counters still declared with the same text, keyed on this group, are kept.
Status EngineImpl::LoadCounters(std::string_view* in, uint32_t g, std::vector<std::pair<uint32_t, CounterState>>* out,
                                bool* dropped) {
  Reader r(in);
  uint64_t n = r.Varint();
  if (!r.ok() || n > in->size()) return Status::Corruption("bad counter count in state");
  for (uint64_t i = 0; i < n; ++i) {
    std::string name(r.String());
    uint64_t fp = r.Fixed64();
    CounterState state;
    if (!r.ok()) return Status::Corruption("truncated counter state");
    if (Status st = state.Decode(in); !st.ok()) return st;
    uint32_t c = 0;
    while (c < rules_->counters.size() && rules_->counters[c].name != name) ++c;
    bool keep = c < rules_->counters.size() && rules_->counters[c].counter->fingerprint == fp && g < groups_.size() &&
                counter_pos_[c] < groups_[g].counters.size() && groups_[g].counters[counter_pos_[c]] == c;
    if (keep) out->emplace_back(c, std::move(state));
    else *dropped = true;
  }
  return Status::Ok();
}

}  // namespace cepheus::engine
