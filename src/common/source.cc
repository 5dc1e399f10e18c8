// Line index and diagnostic formatting.
//
// The line index is built once per file (a sorted vector of line-start
// offsets); locating an offset is a binary search. The echoed source line is
// cut into pieces, one per UTF-8 character (one column), control byte or
// stray byte (printed escaped, \x1b, so a hostile file cannot drive the
// terminal); the caret line has one mark per column of each piece (tabs
// copied), so the caret stays under the span whatever precedes it. A line
// wider than kEchoColumns is shown as a window around the caret. Columns in
// "file:line:col" count characters, as the caret does.
#include "cepheus/common/source.h"

#include <algorithm>
#include <string>
#include <vector>

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

namespace {

constexpr int kEchoColumns = 160;

struct Piece {
  std::string text;  // as echoed
  size_t begin;      // its bytes in the line
  size_t end;
  int width;         // columns
};

std::vector<Piece> Pieces(std::string_view line) {
  std::vector<Piece> out;
  for (size_t i = 0; i < line.size();) {
    auto c = static_cast<unsigned char>(line[i]);
    uint32_t cp = 0;
    size_t n = c < 0x80 ? 1 : DecodeUtf8(line.data() + i, line.data() + line.size(), &cp);
    bool valid = n > 0;
    if (c == '\t' || (c >= 0x20 && c < 0x7F)) {
      out.push_back({std::string(1, static_cast<char>(c)), i, i + 1, 1});
      ++i;
    } else if (c >= 0x80 && valid) {
      out.push_back({std::string(line.substr(i, n)), i, i + n, 1});
      i += n;
    } else {  // a control byte, DEL, or a byte that is not UTF-8
      out.push_back({fmt::format("\\x{:02x}", c), i, i + 1, 4});
      ++i;
    }
  }
  return out;
}

}  // namespace

size_t DecodeUtf8(const char* p, const char* end, uint32_t* code_point) {
  auto c = static_cast<unsigned char>(*p);
  size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || static_cast<size_t>(end - p) < n) return 0;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    auto b = static_cast<unsigned char>(p[k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  *code_point = cp;
  return n;
}

std::string FormatDiagnostic(const Diagnostic& d) {
  const char* kind = d.severity == Severity::kError     ? "error"
                     : d.severity == Severity::kWarning ? "warning"
                                                        : "note";
  if (d.file == nullptr) return fmt::format("cepheus: {}: {}\n", kind, d.message);
  auto lc = d.file->Locate(d.span.begin);
  std::string_view line = d.file->Line(lc.line);
  // The span on this line (clipped to its end), at least one byte wide.
  size_t from = std::min(static_cast<size_t>(lc.col - 1), line.size());
  size_t to = std::min(line.size(), from + (d.span.end - d.span.begin));
  std::vector<Piece> pieces = Pieces(line);
  size_t first = 0;  // the caret's piece
  while (first < pieces.size() && pieces[first].end <= from) ++first;
  std::string out = fmt::format("{}:{}:{}: {}: {}\n", d.file->name(), lc.line, first + 1, kind, d.message);
  // A window of the line around the caret when the line is too wide.
  size_t lo = 0, hi = pieces.size();
  int total = 0;
  for (const auto& p : pieces) total += p.width;
  if (total > kEchoColumns) {
    lo = first > kEchoColumns / 4 ? first - kEchoColumns / 4 : 0;
    hi = std::min(pieces.size(), lo + kEchoColumns / 2);
  }
  std::string echo = lo > 0 ? "..." : "", caret = lo > 0 ? "   " : "";
  bool marked = false;
  for (size_t i = lo; i < hi; ++i) {
    const Piece& p = pieces[i];
    echo += p.text;
    bool in_span = i == first || (p.begin >= from && p.begin < to);
    if (!in_span) {
      if (!marked) caret.append(static_cast<size_t>(p.width), p.text == "\t" ? '\t' : ' ');
      continue;
    }
    caret.push_back(marked ? '~' : '^');
    caret.append(static_cast<size_t>(p.width - 1), '~');
    marked = true;
  }
  if (hi < pieces.size()) echo += "...";
  if (!marked) caret.push_back('^');  // at the end of the line
  out += echo + "\n" + caret + "\n";
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
