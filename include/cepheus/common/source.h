// Source files and compiler-style diagnostics.
//
// A SourceFile owns the text of one rule file and knows where its lines start,
// so any byte offset can be shown as file:line:col with the source line and a
// caret under the span, the way gcc and clang print their errors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cepheus {

// A half-open byte range [begin, end) in one SourceFile.
struct Span {
  uint32_t begin = 0;
  uint32_t end = 0;
};

class SourceFile {
 public:
  SourceFile(std::string name, std::string text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }

  // 1-based line and column of a byte offset (column counts bytes).
  struct LineCol {
    int line;
    int col;
  };
  LineCol Locate(uint32_t offset) const;
  // The text of the 1-based line, without its newline.
  std::string_view Line(int line) const;

 private:
  std::string name_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

enum class Severity { kError, kWarning, kNote };

struct Diagnostic {
  Severity severity = Severity::kError;
  const SourceFile* file = nullptr;  // not owned; may be null for whole-set errors
  Span span;
  std::string message;
};

// "file:line:col: error: message\n<source line>\n<caret line>\n".
std::string FormatDiagnostic(const Diagnostic& d);

// The UTF-8 character of two bytes or more at [p, end): its length, and its
// code point in *code_point; 0 when the bytes there are not one (ASCII is
// the caller's to test first).
size_t DecodeUtf8(const char* p, const char* end, uint32_t* code_point);

// Collects diagnostics in the order they are found.
class DiagnosticSink {
 public:
  void Error(const SourceFile* file, Span span, std::string message);
  void Warning(const SourceFile* file, Span span, std::string message);
  bool has_errors() const { return errors_ > 0; }
  int error_count() const { return errors_; }
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }
  std::string FormatAll() const;
  // Keeps a file alive as long as the sink, so diagnostics that point into it
  // stay printable after the rule set that read it is gone.
  void Retain(std::shared_ptr<const SourceFile> file) { files_.push_back(std::move(file)); }

 private:
  std::vector<std::shared_ptr<const SourceFile>> files_;
  std::vector<Diagnostic> diags_;
  int errors_ = 0;
};

}  // namespace cepheus
