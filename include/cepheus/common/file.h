// Reading whole files, with errors as values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cepheus/common/status.h"

namespace cepheus {

// Appends all of `path` ("-": standard input) to *out: files, pipes and FIFOs.
// A directory, a missing file or a read error is an IoError naming the path
// and the reason, never an exception.
// With a regular file, `spare` bytes of capacity are left after the content
// (simdjson's padding, say), so the caller can append them without a copy.
// Past `max_bytes` of content the read stops with a LimitExceeded error
// that names the limit (a rule file that is /dev/zero costs the limit, not
// all memory); the content read so far is left in *out.
Status ReadWholeFile(const std::string& path, std::string* out, size_t spare = 0, size_t max_bytes = SIZE_MAX);

// Lines of a file or a pipe ("-": standard input), read in blocks in bounded
// memory, whatever the input's size: a line is a view into the reader's
// buffer, valid until the next call, followed by at least `padding` readable
// bytes (simdjson's). A line longer than `max_line` bytes is never held: it
// is skipped to its end and handed out empty, marked too long.
class LineReader {
 public:
  struct Line {
    std::string_view text;  // without its '\n'
    uint64_t number = 0;    // 1-based
    bool too_long = false;
  };
  // A missing file or a directory is an IoError naming the path.
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path, size_t max_line, size_t padding);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  // The next line, nullopt at the end of the input, or a read error.
  Result<std::optional<Line>> Next();
  // Called before each read that may wait (the caller flushes its output, so
  // what the lines so far produced is out before the reader blocks on a pipe).
  void set_before_read(std::function<void()> f) { before_read_ = std::move(f); }

 private:
  LineReader(int fd, bool owned, std::string name, size_t max_line, size_t padding);
  Status Fill();  // reads one block after the data held

  int fd_;
  bool owned_;
  std::string name_;
  size_t max_line_;
  size_t padding_;
  std::string buf_;  // data in [start_, end_), then at least padding_ bytes
  size_t start_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool skipping_ = false;  // inside a line past max_line
  uint64_t number_ = 0;
  std::function<void()> before_read_;
};

}  // namespace cepheus
