// Status and Result<T>: errors as values on every runtime path.
//
// Modelled on leveldb::Status: a cheap OK value, named constructors for each
// kind of failure, and a message that reads as a sentence for the user. A
// Result<T> holds either a T or a non-OK Status. Neither type throws.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace cepheus {

class Status {
 public:
  enum class Code { kOk, kInvalidArgument, kNotFound, kIoError, kCorruption, kLimitExceeded, kFailedPrecondition };

  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status LimitExceeded(std::string msg) { return {Code::kLimitExceeded, std::move(msg)}; }
  // The environment refuses the operation as set up (a directory another
  // process holds): retrying will not help, the operator must act.
  static Status FailedPrecondition(std::string msg) { return {Code::kFailedPrecondition, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  // The message alone, as the user should read it ("" when OK).
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}                       // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok()
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace cepheus
