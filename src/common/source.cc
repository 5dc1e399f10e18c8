// Line index and diagnostic formatting.
//
// The line index is built once per file (a sorted vector of line-start
// offsets); locating an offset is a binary search. A caret line copies the
// tabs of the source line so the caret stays under the span in a terminal.
#include "cepheus/common/source.h"

#include <algorithm>

#include <fmt/format.h>

namespace cepheus {

SourceFile::SourceFile(std::string name, std::string text)
    : name_(std::move(name)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

SourceFile::LineCol SourceFile::Locate(uint32_t offset) const {
  offset = std::min<uint32_t>(offset, static_cast<uint32_t>(text_.size()));
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  int line = static_cast<int>(it - line_starts_.begin());
  return {line, static_cast<int>(offset - line_starts_[line - 1]) + 1};
}

std::string_view SourceFile::Line(int line) const {
  if (line < 1 || line > static_cast<int>(line_starts_.size())) return {};
  uint32_t b = line_starts_[line - 1];
  uint32_t e = line < static_cast<int>(line_starts_.size()) ? line_starts_[line] - 1
                                                            : static_cast<uint32_t>(text_.size());
  std::string_view v(text_.data() + b, e - b);
  if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
  return v;
}

std::string FormatDiagnostic(const Diagnostic& d) {
  const char* kind = d.severity == Severity::kError     ? "error"
                     : d.severity == Severity::kWarning ? "warning"
                                                        : "note";
  if (d.file == nullptr) return fmt::format("cepheus: {}: {}\n", kind, d.message);
  auto lc = d.file->Locate(d.span.begin);
  std::string out = fmt::format("{}:{}:{}: {}: {}\n", d.file->name(), lc.line, lc.col, kind, d.message);
  std::string_view line = d.file->Line(lc.line);
  out.append(line);
  out.push_back('\n');
  std::string caret;
  for (int i = 0; i + 1 < lc.col && i < static_cast<int>(line.size()); ++i) {
    caret.push_back(line[i] == '\t' ? '\t' : ' ');
  }
  // The caret covers the span, clipped to the end of its first line.
  int width = static_cast<int>(d.span.end) - static_cast<int>(d.span.begin);
  int room = static_cast<int>(line.size()) - (lc.col - 1);
  width = std::max(1, std::min(width, std::max(room, 1)));
  caret.push_back('^');
  caret.append(static_cast<size_t>(width - 1), '~');
  out += caret;
  out.push_back('\n');
  return out;
}

void DiagnosticSink::Error(const SourceFile* file, Span span, std::string message) {
  diags_.push_back({Severity::kError, file, span, std::move(message)});
  ++errors_;
}

void DiagnosticSink::Warning(const SourceFile* file, Span span, std::string message) {
  diags_.push_back({Severity::kWarning, file, span, std::move(message)});
}

std::string DiagnosticSink::FormatAll() const {
  // Per file in the order files were first reported, then by position.
  std::vector<const SourceFile*> order;
  for (const auto& d : diags_) {
    if (std::find(order.begin(), order.end(), d.file) == order.end()) order.push_back(d.file);
  }
  std::vector<const Diagnostic*> sorted;
  for (const auto& d : diags_) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(), [&](const Diagnostic* a, const Diagnostic* b) {
    auto fa = std::find(order.begin(), order.end(), a->file);
    auto fb = std::find(order.begin(), order.end(), b->file);
    if (fa != fb) return fa < fb;
    return a->span.begin < b->span.begin;
  });
  std::string out;
  for (const auto* d : sorted) out += FormatDiagnostic(*d);
  return out;
}

}  // namespace cepheus
