// Cold keys: a bound on the keys whose state is held in memory.
//
// Every key's state is in the store after a save (its record, STATE_FORMAT.md),
// so a saved key that is not in use need not be in memory too. EvictColdKeys
// runs a clock over the entries (second chance: a key touched since the hand
// last passed keeps its state and loses its mark) and lets saved, unchanged
// keys go until EngineOptions::max_resident_keys are left. A cold key keeps its
// entry (64 bytes), its index slot, its counters' wake-up, the closings of its
// runs of rules with a trailing absence (they alert, in their FIFO's order)
// and one wake-up (cold_wakes_) at the earliest arm of its other rules, whose
// FIFO entries the next compaction drops: ~110 bytes with the shipped rules.
// It drops its runs, counters and the events they bind.
// Anything that reaches a cold key (an event, a closing, a wake-up, a counter
// read, a full Save) first reads its record back (Warm) with the decoder a
// restore uses, so a cold key behaves as a key restored from the store, which
// is what a restart gives every key. The rules whose closings are silent keep
// one live arm per key in KeyState, which the record does not hold: a warmed
// key is armed again at its oldest deadline, and the arm queued before passes
// as stale (or fires first and closes what the new one would). Cooldown
// wake-ups likewise. A cold wake-up whose key was read back since (and maybe
// let go again, with a wake-up of its own) at most reads it back early.
#include "engine/engine_impl.h"
#include "engine/state_format.h"

#include <fmt/format.h>

namespace cepheus::engine {

void EngineImpl::Warm(uint32_t id) {
  KeyEntry& entry = entries_[id];
  entry.used = true;
  if (!entry.cold) return;
  entry.cold = false;
  --cold_keys_;
  ++stats_.keys_warmed;
  std::string key;
  StateKeyOf(groups_[entry.group].field, entry.key, &key);
  Status st;
  if (cold_store_ == nullptr) {
    st = Status::FailedPrecondition("no cold store");  // none is let go without one
  } else if (auto got = cold_store_->Get(key); !got.ok()) {
    st = got.status();
  } else if (!got.value().has_value()) {
    st = Status::NotFound("no record in the store");
  } else {
    st = WarmFrom(id, *got.value());
  }
  if (!st.ok() && cold_status_.ok()) {
    std::string why = fmt::format("cannot read the state of key '{}' ({}) back: {}", entry.key,
                                  groups_[entry.group].field, st.message());
    cold_status_ = st.code() == Status::Code::kIoError ? Status::IoError(why) : Status::Corruption(why);
  }
}

// Installs a key record into a cold entry: the runs of each rule section and
// the counters, without counting them again (their counts stayed while the
// key was cold) and without queueing their closings again (those stayed too).
Status EngineImpl::WarmFrom(uint32_t id, std::string_view value) {
  auto sk = SplitStoredKey(value);
  if (!sk.ok()) return sk.status();
  const uint32_t g = entries_[id].group;
  if (sk.value().field != groups_[g].field || sk.value().key != entries_[id].key) {
    return Status::Corruption("the record is of another key");
  }
  std::vector<std::pair<uint32_t, CounterState>> counters;
  bool dropped = false;
  auto rec = DecodeKey(g, sk.value().record, cold_decoder_, &counters, &dropped);
  if (!rec.ok()) return rec.status();
  for (const auto& sr : rec.value()) dropped = dropped || !sr.loaded;
  if (dropped) return Status::Corruption("the record holds the state of rules this engine does not run");
  for (auto& sr : rec.value()) {
    uint32_t r = groups_[g].rules[static_cast<size_t>(RuleOf(g, sr.rule))];
    RuleState& rs = states_[r];
    KeyState& ks = entries_[id].rules.Get(rs.pos);
    ks.runs = std::move(sr.runs);
    if (rs.silent && !ks.runs.empty()) Arm(id, r, rs.matcher.NextDeadline(ks.runs));
    // Its cooldown's wake-up as queued when it began, whatever the time now:
    // a warm-up inside CloseUntil comes after the watermark has moved on.
    Schedule(id, r, kMinTime);
  }
  KeyEntry& entry = entries_[id];
  for (auto& [c, state] : counters) {
    if (entry.counters.empty()) entry.counters.resize(groups_[g].counters.size());
    entry.counters[counter_pos_[c]] = std::move(state);
  }
  return Status::Ok();
}

void EngineImpl::Evict(uint32_t id) {
  KeyEntry& entry = entries_[id];
  Millis wake = kMaxTime;
  for (const auto& slot : entry.rules) {
    const uint32_t r = groups_[entry.group].rules[slot.pos];
    if (!states_[r].silent || slot.state.armed_at == kMaxTime) continue;
    wake = std::min(wake, slot.state.armed_at);
    ++cold_arms_[r];
  }
  if (wake != kMaxTime) cold_wakes_.push(KeyWake{wake, id, entry.generation});
  entry.rules.clear();
  entry.counters.clear();
  entry.cold = true;
  ++cold_keys_;
  ++stats_.keys_evicted;
}

uint64_t EngineImpl::ResidentExcess() const {
  const uint64_t max = options_.max_resident_keys;
  const uint64_t resident = entries_.size() - free_entries_.size() - cold_keys_;
  return max == 0 || cold_store_ == nullptr || resident <= max ? 0 : resident - max;
}

size_t EngineImpl::EvictColdKeys() {
  uint64_t excess = ResidentExcess();
  size_t evicted = 0;
  // Two turns of the hand at most: the first may only clear marks.
  for (size_t step = 0; excess > 0 && step < 2 * entries_.size(); ++step) {
    if (clock_hand_ >= entries_.size()) clock_hand_ = 0;
    const uint32_t id = static_cast<uint32_t>(clock_hand_++);
    KeyEntry& entry = entries_[id];
    if (!entry.in_use || entry.cold) continue;
    if (entry.used) {
      entry.used = false;
      continue;
    }
    if (!Evictable(entry)) continue;  // the store does not hold what memory does
    Evict(id);
    --excess;
    ++evicted;
  }
  CompactColdArms();
  return evicted;
}

}  // namespace cepheus::engine
