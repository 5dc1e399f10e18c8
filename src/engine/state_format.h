// Internal: the bytes of the state format (engine module only): varints,
// zig-zag signed numbers, length-prefixed strings, and a Reader that fails
// (ok() false, input consumed) instead of reading past its input. What the
// records hold is in STATE_FORMAT.md; the codec (state_codec.cc) and the
// engine's persistence (persist.cc) both speak it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "cepheus/common/time.h"

namespace cepheus::engine {

// Signed numbers zig-zag encoded, so that small negative ones stay short.
inline uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }

inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
inline void PutSigned(std::string* out, int64_t v) { PutVarint(out, ZigZag(v)); }

// Writing into room reserved beforehand: no capacity check per byte.
inline char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
inline char* PutSigned(char* p, int64_t v) { return PutVarint(p, ZigZag(v)); }
inline char* PutString(char* p, std::string_view s) {
  p = PutVarint(p, s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
inline constexpr size_t kMaxVarint = 10;
// A double as its 8 bytes (little-endian on the machines cepheus runs on), so
// it reads back exactly.
inline void PutF64(std::string* out, double d) {
  char b[8];
  std::memcpy(b, &d, 8);
  out->append(b, 8);
}
inline void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
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
    if (!InEventTimeRange(t)) return Fail();
    return t;
  }
  // A watermark: an event time, or one of the two sentinels.
  Millis Watermark() {
    Millis t = Signed();
    if (t != kMinTime && t != kMaxTime && !InEventTimeRange(t)) return Fail();
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
  double F64() {
    uint64_t bits = Fixed64();
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
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

}  // namespace cepheus::engine
