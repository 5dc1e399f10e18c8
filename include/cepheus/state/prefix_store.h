// A StateStore view that puts every key under a prefix: one LMDB environment
// holds the state of many partitions ("p/<topic>/<partition>/...").
#pragma once

#include <string>

#include "cepheus/engine/seams.h"

namespace cepheus::state {

class PrefixStore : public engine::StateStore {
 public:
  // `base` is not owned and must outlive this view.
  PrefixStore(engine::StateStore* base, std::string prefix) : base_(base), prefix_(std::move(prefix)) {}

  Status Put(std::string_view key, std::string_view value) override { return base_->Put(Key(key), value); }
  Status Delete(std::string_view key) override { return base_->Delete(Key(key)); }
  Status Scan(std::string_view prefix,
              const std::function<void(std::string_view, std::string_view)>& fn) const override {
    size_t n = prefix_.size();
    return base_->Scan(Key(prefix), [&](std::string_view k, std::string_view v) { fn(k.substr(n), v); });
  }

 private:
  std::string Key(std::string_view k) const { return prefix_ + std::string(k); }
  engine::StateStore* base_;
  std::string prefix_;
};

}  // namespace cepheus::state
