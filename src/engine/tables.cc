// Tables: versioned reference data, as of event time.
//
// Each table is a hash map (tsl::robin_map) from the key's text to its
// versions, oldest first, in a small vector (most keys have one). A version
// is (from, record); a null record is a deletion. Apply decodes a record with
// simdjson into an nfa::Event holding only the fields some rule reads (by the
// table's FieldTable slot: a lookup reads a slot, never a name), then inserts
// it at its time: after every version of an earlier time, replacing one of
// the same time (the later in the source wins). Find hashes the key once and
// binary-searches that key's versions for the last one not after `at`.
//
// Each version keeps the JSON text of its record, so the daemon can save a
// table (SaveChanges: the whole version list of each key changed since the
// last save, one store record per key under a digest of the key) and load it
// again, even into a rule set that reads other fields of it.
//
// Fold walks only the keys that hold more than one version (kept in a list as
// they gain a second), so its cost follows the keys that changed, not the
// table. A key left with a single deletion older than the horizon is removed:
// every lookup of it reads null either way.
#include "cepheus/engine/tables.h"

#include <algorithm>

#include <boost/container/small_vector.hpp>
#include <fmt/format.h>
#include <simdjson.h>
#include <tsl/robin_map.h>

#include "engine/json_values.h"
#include "engine/state_format.h"

#include <xxhash.h>
#include <unordered_set>

namespace cepheus::engine {
namespace {

struct Version {
  Millis from;
  nfa::EventRef record;  // null: deleted from `from` on
};

using Versions = boost::container::small_vector<Version, 1>;

struct Hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
struct Eq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

struct Table {
  const nfa::TableProgram* program = nullptr;
  tsl::robin_map<std::string, Versions, Hash, Eq> keys;
  std::vector<std::string> multi;  // keys that gained a second version since the last Fold
  std::unordered_set<std::string> dirty;  // keys changed since the last SaveChanges or Load
  TableStats stats;
  uint64_t max_versions = 0;
  mutable Millis read_horizon = kMinTime;  // the latest time a lookup has read the table as of
};

// The element at `path` under `root`; false when a part is missing.
bool FieldAt(simdjson::dom::element root, const std::vector<std::string>& path, simdjson::dom::element* out) {
  simdjson::dom::element el = root;
  for (const auto& part : path) {
    simdjson::dom::object inner;
    if (el.get_object().get(inner) || inner.at_key(part).get(el)) return false;
  }
  *out = el;
  return true;
}

size_t RecordBytes(const nfa::Event* e) {
  return e == nullptr ? 0 : sizeof(nfa::Event) + e->fields.size() * sizeof(Value) + e->raw.size();
}

}  // namespace

struct Tables::Impl {
  std::shared_ptr<const nfa::CompiledRuleSet> rules;
  TablesOptions options;
  std::vector<Table> tables;
  simdjson::dom::parser parser;
  std::string key;  // scratch

  Status Insert(Table& t, std::string_view key, Millis from, nfa::EventRef record);
  // The record's fields that rules read, and its text.
  Result<nfa::EventRef> Decode(const Table& t, simdjson::dom::element root, std::string_view json);
};

Tables::Tables(std::shared_ptr<const nfa::CompiledRuleSet> rules, TablesOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->rules = std::move(rules);
  impl_->options = options;
  for (const auto& tp : impl_->rules->tables) {
    Table t;
    t.program = &tp;
    t.max_versions = impl_->options.max_versions;
    impl_->tables.push_back(std::move(t));
  }
}

Tables::~Tables() = default;

int32_t Tables::Index(std::string_view name) const { return impl_->rules->FindTable(name); }
size_t Tables::size() const { return impl_->tables.size(); }
const TableStats& Tables::stats(int32_t table) const { return impl_->tables[static_cast<size_t>(table)].stats; }
void Tables::set_max_versions(int32_t table, uint64_t max_versions) {
  impl_->tables[static_cast<size_t>(table)].max_versions = max_versions;
}

// The fields of the record that rules read, in one allocation as an event's.
Result<nfa::EventRef> Tables::Impl::Decode(const Table& t, simdjson::dom::element root, std::string_view json) {
  const auto& paths = t.program->fields.paths();
  std::vector<simdjson::dom::element> found(paths.size());
  std::vector<bool> have(paths.size(), false);
  size_t text_bytes = 0, arrays = 0;
  for (size_t slot = 0; slot < paths.size(); ++slot) {
    simdjson::dom::element el;
    if (!FieldAt(root, paths[slot], &el)) continue;
    found[slot] = el;
    have[slot] = true;
    if (el.is_string()) {
      size_t n = el.get_string().value_unsafe().size();
      if (n > Value::kInline) text_bytes += n;
    } else if (el.is_array()) {
      ++arrays;
      simdjson::dom::array arr = el.get_array().value_unsafe();
      for (auto item : arr) {
        if (item.is_string() && item.get_string().value_unsafe().size() > Value::kInline) {
          text_bytes += item.get_string().value_unsafe().size();
        }
      }
    }
  }
  nfa::EventRef ev(nfa::Event::New(paths.size(), text_bytes + json.size()));
  ev->raw = ev->Keep(json);
  ev->lists.reserve(arrays);
  auto rebase = [&](Value v) {
    if (v.kind == Value::Kind::kString && !v.is_inline_string()) v.chars = ev->Keep(v.str()).data();
    return v;
  };
  for (size_t slot = 0; slot < paths.size(); ++slot) {
    if (!have[slot]) continue;
    if (found[slot].is_array()) {
      ev->lists.emplace_back();
      simdjson::dom::array arr = found[slot].get_array().value_unsafe();
      for (auto item : arr) ev->lists.back().push_back(rebase(Scalar(item)));
      ev->fields[slot] = Value::List(ev->lists.back());
    } else {
      ev->fields[slot] = rebase(Scalar(found[slot]));
    }
  }
  return ev;
}

Status Tables::Impl::Insert(Table& t, std::string_view key, Millis from, nfa::EventRef record) {
  if (from != kMinTime && from <= t.read_horizon) ++t.stats.late;
  auto it = t.keys.find(key);
  if (it == t.keys.end()) {
    if (t.max_versions > 0 && t.stats.versions >= t.max_versions) {
      ++t.stats.refused;
      return Status::LimitExceeded(
          fmt::format("table '{}' holds {} versions, its limit", t.program->name, t.max_versions));
    }
    t.stats.bytes += RecordBytes(record.get()) + key.size();
    t.keys.emplace(std::string(key), Versions{Version{from, std::move(record)}});
    t.dirty.emplace(key);
    ++t.stats.keys;
    ++t.stats.versions;
    ++t.stats.records;
    return Status::Ok();
  }
  Versions& vs = it.value();
  // After every version of an earlier time; one of the same time is replaced.
  auto at = std::upper_bound(vs.begin(), vs.end(), from, [](Millis f, const Version& v) { return f < v.from; });
  if (at != vs.begin() && (at - 1)->from == from) {
    t.stats.bytes += RecordBytes(record.get());
    t.stats.bytes -= RecordBytes((at - 1)->record.get());
    (at - 1)->record = std::move(record);
    t.dirty.emplace(key);
    ++t.stats.records;
    return Status::Ok();
  }
  if (t.max_versions > 0 && t.stats.versions >= t.max_versions) {
    ++t.stats.refused;
    return Status::LimitExceeded(
        fmt::format("table '{}' holds {} versions, its limit", t.program->name, t.max_versions));
  }
  t.stats.bytes += RecordBytes(record.get());
  if (vs.size() == 1) t.multi.emplace_back(key);
  vs.insert(at, Version{from, std::move(record)});
  t.dirty.emplace(key);
  ++t.stats.versions;
  ++t.stats.records;
  return Status::Ok();
}

Status Tables::Apply(int32_t table, std::string_view json) {
  Table& t = impl_->tables[static_cast<size_t>(table)];
  auto fail = [&](std::string why) {
    ++t.stats.malformed;
    return Status::InvalidArgument(std::move(why));
  };
  simdjson::dom::element root;
  if (auto err = impl_->parser.parse(json.data(), json.size(), true).get(root)) {
    return fail(fmt::format("not valid JSON: {}", simdjson::error_message(err)));
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) return fail("not a JSON object");
  auto field = [&](const std::vector<std::string>& path, simdjson::dom::element* out) {
    return FieldAt(root, path, out);
  };
  const nfa::TableProgram& p = *t.program;
  std::string key_path = fmt::format("{}", fmt::join(p.key, "."));
  simdjson::dom::element key_el;
  if (!field(p.key, &key_el) || !nfa::ValueKeyText(Scalar(key_el), &impl_->key)) {
    return fail(fmt::format("no usable key '{}' (a string, a number or true/false)", key_path));
  }
  Millis from = kMinTime;  // no time: from the beginning of time
  simdjson::dom::element time_el;
  if (!p.time.empty() && field(p.time, &time_el) && !time_el.is_null()) {
    auto time = EventTime(time_el, fmt::format("{}", fmt::join(p.time, ".")));
    if (!time.ok()) return fail(time.status().message());
    from = time.value();
  }
  simdjson::dom::element deleted;
  bool is_deleted = false;
  if (obj.at_key("deleted").get(deleted) == simdjson::SUCCESS) is_deleted = deleted.is_bool() && deleted.get_bool().value_unsafe();
  nfa::EventRef record;
  if (!is_deleted) {
    auto decoded = impl_->Decode(t, root, json);
    if (!decoded.ok()) return fail(decoded.status().message());
    record = std::move(decoded).value();
  }
  return impl_->Insert(t, impl_->key, from, std::move(record));
}

Status Tables::Delete(int32_t table, std::string_view key, Millis time) {
  return impl_->Insert(impl_->tables[static_cast<size_t>(table)], key, time, nullptr);
}

const nfa::Event* Tables::Find(int32_t table, std::string_view key, Millis at) const {
  const Table& t = impl_->tables[static_cast<size_t>(table)];
  if (at > t.read_horizon) t.read_horizon = at;
  auto it = t.keys.find(key);
  if (it == t.keys.end()) return nullptr;
  const Versions& vs = it->second;
  auto after = std::upper_bound(vs.begin(), vs.end(), at, [](Millis a, const Version& v) { return a < v.from; });
  if (after == vs.begin()) return nullptr;
  return (after - 1)->record.get();
}

void Tables::Fold(Millis watermark) {
  for (Table& t : impl_->tables) {
    if (watermark < kMinTime + t.program->history) continue;  // nothing that old (and no overflow)
    const Millis horizon = watermark - t.program->history;
    std::vector<std::string> still;
    for (const std::string& key : t.multi) {
      auto it = t.keys.find(key);
      if (it == t.keys.end()) continue;
      Versions& vs = it.value();
      // Versions before the horizon: the newest of them stands for all.
      auto first_kept = std::upper_bound(vs.begin(), vs.end(), horizon,
                                         [](Millis h, const Version& v) { return h <= v.from; });
      size_t old = static_cast<size_t>(first_kept - vs.begin());
      if (old >= 2) {
        Millis oldest = vs.front().from;
        for (size_t i = 0; i + 1 < old; ++i) t.stats.bytes -= RecordBytes(vs[i].record.get());
        vs.erase(vs.begin(), vs.begin() + static_cast<std::ptrdiff_t>(old - 1));
        vs.front().from = oldest;
        t.stats.versions -= old - 1;
        t.dirty.insert(key);
      }
      if (vs.size() == 1 && vs.front().record == nullptr && vs.front().from < horizon) {
        t.stats.bytes -= key.size();
        t.dirty.insert(key);
        t.keys.erase(it);
        --t.stats.keys;
        --t.stats.versions;
        continue;
      }
      if (vs.size() > 1) still.push_back(key);
    }
    t.multi = std::move(still);
  }
}

Status Tables::Adopt(int32_t table, Tables& from, int32_t from_table) {
  if (Prefix(table) != from.Prefix(from_table)) {
    return Status::FailedPrecondition("a table is adopted only under the same declaration");
  }
  Table& t = impl_->tables[static_cast<size_t>(table)];
  Table& src = from.impl_->tables[static_cast<size_t>(from_table)];
  const nfa::TableProgram* program = t.program;
  const uint64_t max_versions = t.max_versions;
  const bool same_fields = src.program->fields.paths() == program->fields.paths();
  t = std::move(src);
  src = Table{};
  src.program = t.program;
  t.program = program;
  t.max_versions = max_versions;
  if (same_fields) return Status::Ok();
  // Decoded for the other rule set's fields: decode each record again.
  for (auto it = t.keys.begin(); it != t.keys.end(); ++it) {
    for (Version& v : it.value()) {
      if (v.record == nullptr) continue;
      simdjson::padded_string padded(v.record->raw);
      simdjson::dom::element root;
      if (impl_->parser.parse(padded).get(root)) {
        return Status::Corruption(fmt::format("table '{}': a kept record is not JSON", program->name));
      }
      auto decoded = impl_->Decode(t, root, v.record->raw);
      if (!decoded.ok()) return decoded.status();
      t.stats.bytes += RecordBytes(decoded.value().get());
      t.stats.bytes -= RecordBytes(v.record.get());
      v.record = std::move(decoded).value();
    }
  }
  return Status::Ok();
}

std::string Tables::Prefix(int32_t table) const {
  const nfa::TableProgram& p = *impl_->tables[static_cast<size_t>(table)].program;
  std::string decl = fmt::format("{}\n{}", fmt::join(p.key, "."), fmt::join(p.time, "."));
  return fmt::format("t/{}/{:016x}/", p.name, XXH3_64bits(decl.data(), decl.size()));
}

namespace {

// A key's store key: the table's prefix and the 16 bytes of XXH3-128 of the
// key's text (any length fits LMDB's key limit).
std::string StoreKey(const std::string& prefix, std::string_view key) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(key.data(), key.size()));
  std::string out = prefix;
  out.append(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
  return out;
}

}  // namespace

// The record of one key: string key, varint N, then N x (svarint from, u8
// deleted, string JSON text), oldest first.
Status Tables::SaveChanges(int32_t table, StateStore* store) {
  Table& t = impl_->tables[static_cast<size_t>(table)];
  const std::string prefix = Prefix(table);
  std::string value;
  for (const std::string& key : t.dirty) {
    auto it = t.keys.find(key);
    if (it == t.keys.end()) {
      if (Status st = store->Delete(StoreKey(prefix, key)); !st.ok()) return st;
      continue;
    }
    value.clear();
    PutVarint(&value, key.size());
    value.append(key);
    PutVarint(&value, it->second.size());
    for (const Version& v : it->second) {
      PutSigned(&value, v.from);
      value.push_back(v.record == nullptr ? '\1' : '\0');
      std::string_view raw = v.record == nullptr ? std::string_view() : v.record->raw;
      PutVarint(&value, raw.size());
      value.append(raw);
    }
    if (Status st = store->Put(StoreKey(prefix, key), value); !st.ok()) return st;
  }
  t.dirty.clear();
  return Status::Ok();
}

Status Tables::Load(int32_t table, const StateStore& store) {
  Table& t = impl_->tables[static_cast<size_t>(table)];
  t.keys.clear();
  t.multi.clear();
  t.stats = TableStats{};
  Status result;
  Status scanned = store.Scan(Prefix(table), [&](std::string_view, std::string_view v) {
    if (!result.ok()) return;
    std::string_view in = v;
    Reader r(&in);
    std::string key(r.String());
    uint64_t n = r.Varint();
    for (uint64_t i = 0; i < n && r.ok(); ++i) {
      Millis from = r.Signed();
      bool deleted = r.Byte() != 0;
      std::string_view raw = r.String();
      if (!r.ok()) break;
      nfa::EventRef record;
      if (!deleted) {
        simdjson::padded_string padded(raw);
        simdjson::dom::element root;
        if (impl_->parser.parse(padded).get(root)) {
          result = Status::Corruption(fmt::format("table '{}': a stored record is not JSON", t.program->name));
          return;
        }
        auto decoded = impl_->Decode(t, root, raw);
        if (!decoded.ok()) {
          result = decoded.status();
          return;
        }
        record = std::move(decoded).value();
      }
      (void)impl_->Insert(t, key, from, std::move(record));
    }
    if (!r.ok()) result = Status::Corruption(fmt::format("table '{}': a stored record is damaged", t.program->name));
  });
  t.dirty.clear();
  t.stats.late = 0;
  return scanned.ok() ? result : scanned;
}

}  // namespace cepheus::engine
