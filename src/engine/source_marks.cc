// SourceMarks: a map from source to its latest mark; the watermark is its
// least value (a linear pass: a partition has as many sources as the input
// has partitions, tens at most).
#include "cepheus/engine/source_marks.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace cepheus::engine {
namespace {

constexpr std::string_view kMarkPrefix("\0cepheus-mark\t", 14);

Result<Millis> ParseMillis(std::string_view text) {
  Millis n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Status::InvalidArgument(fmt::format("not a time in milliseconds: '{}'", text.substr(0, 24)));
  }
  return n;
}

}  // namespace

SourceMarks::SourceMarks(std::vector<std::string> sources) {
  for (auto& s : sources) marks_.emplace(std::move(s), kMinTime);
}

void SourceMarks::Mark(std::string_view source, Millis mark) {
  auto it = marks_.find(source);
  if (it == marks_.end()) {
    marks_.emplace(std::string(source), mark);
    return;
  }
  it->second = std::max(it->second, mark);
}

Millis SourceMarks::watermark() const {
  if (marks_.empty()) return kMinTime;
  Millis w = kMaxTime;
  for (const auto& [source, mark] : marks_) w = std::min(w, mark);
  return w;
}

std::string SourceMarks::Encode() const {
  std::string out;
  for (const auto& [source, mark] : marks_) {
    if (mark != kMinTime) out += fmt::format("{}\t{}\n", source, mark);
  }
  return out;
}

Status SourceMarks::Decode(std::string_view text) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t tab = line.rfind('\t');
    if (tab == std::string_view::npos) return Status::Corruption("a stored source mark has no tab");
    auto mark = ParseMillis(line.substr(tab + 1));
    if (!mark.ok()) return Status::Corruption("a stored source mark: " + mark.status().message());
    Mark(line.substr(0, tab), mark.value());
  }
  return Status::Ok();
}

std::string EncodeMarkRecord(std::string_view source, Millis mark) {
  return fmt::format("{}{}\t{}", kMarkPrefix, source, mark);
}

bool IsMarkRecord(std::string_view value) { return value.substr(0, kMarkPrefix.size()) == kMarkPrefix; }

Result<std::pair<std::string, Millis>> ParseMarkRecord(std::string_view value) {
  if (!IsMarkRecord(value)) return Status::InvalidArgument("not a mark record");
  std::string_view rest = value.substr(kMarkPrefix.size());
  size_t tab = rest.rfind('\t');
  if (tab == std::string_view::npos || tab == 0) return Status::InvalidArgument("a mark record without its source");
  auto mark = ParseMillis(rest.substr(tab + 1));
  if (!mark.ok()) return Status::InvalidArgument("a mark record: " + mark.status().message());
  return std::make_pair(std::string(rest.substr(0, tab)), mark.value());
}

}  // namespace cepheus::engine
