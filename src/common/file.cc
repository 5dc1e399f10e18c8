// ReadWholeFile: read(2) until end of file, into a buffer reserved at the
// file's size (plus the caller's spare room) when it is a regular file, so a
// file is read with one allocation and no copy; pipes grow it as they go. A
// directory is refused before reading (read(2) would fail with EISDIR, and
// iostreams turn that into an exception or a silent empty read).
//
// LineReader: one buffer of a block plus the longest line plus the padding.
// Next() looks for '\n' in the data held; without one it moves the partial
// line to the front and reads a block after it. A partial line that already
// passes max_line is dropped and the reader skips to the next '\n', so a
// 1 GB line costs a block, not a gigabyte.
#include "cepheus/common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace cepheus {

namespace {

constexpr size_t kBlock = 1 << 20;  // LineReader's read size

// Opens `path` ("-": standard input, not opened) for reading into *fd, with
// its stat in *st; a directory is refused. Errors name the path and the
// reason.
Status OpenInput(const std::string& path, int* fd, struct stat* st) {
  const std::string name = path == "-" ? "standard input" : path;
  *fd = 0;
  if (path != "-") {
    *fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return Status::IoError(fmt::format("cannot read {}: {}", name, std::strerror(errno)));
  }
  if (::fstat(*fd, st) == 0 && S_ISDIR(st->st_mode)) {
    if (path != "-") ::close(*fd);
    return Status::IoError(fmt::format("cannot read {}: it is a directory", name));
  }
  return Status::Ok();
}

}  // namespace

Status ReadWholeFile(const std::string& path, std::string* out, size_t spare, size_t max_bytes) {
  const bool stdin_ = path == "-";
  const std::string name = stdin_ ? "standard input" : path;
  int fd = 0;
  struct stat st {};
  if (Status s = OpenInput(path, &fd, &st); !s.ok()) return s;
  auto close = [&] {
    if (!stdin_) ::close(fd);
  };
  const bool regular = S_ISREG(st.st_mode);
  const size_t start = out->size();
  auto too_big = [&] {
    close();
    return Status::LimitExceeded(
        fmt::format("{} is larger than {} bytes, the most cepheus reads of such a file", name, max_bytes));
  };
  if (regular && static_cast<uint64_t>(st.st_size) > max_bytes) return too_big();
  if (regular && st.st_size > 0) out->reserve(out->size() + static_cast<size_t>(st.st_size) + spare + 1);
  // A regular file straight into the string while it has room (one read),
  // then through a small block, so that reaching the end of a file read whole
  // does not grow the buffer; pipes through the block (a pipe gives 64 KiB at
  // a time, and sizing the string for more would clear memory per read).
  char block[64 * 1024];
  for (;;) {
    size_t have = out->size();
    size_t room = out->capacity() - have;
    room = room > spare ? room - spare : 0;
    ssize_t n;
    if (regular && room >= sizeof block) {
      out->resize(have + room);
      n = ::read(fd, out->data() + have, room);
      out->resize(have + static_cast<size_t>(n > 0 ? n : 0));
    } else {
      n = ::read(fd, block, sizeof block);
      if (n > 0) out->append(block, static_cast<size_t>(n));
    }
    if (n > 0) {
      if (out->size() - start > max_bytes) return too_big();
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    int err = errno;
    close();
    return Status::IoError(fmt::format("cannot read {}: {}", name, std::strerror(err)));
  }
  close();
  return Status::Ok();
}

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path, size_t max_line, size_t padding) {
  int fd = 0;
  struct stat st {};
  if (Status s = OpenInput(path, &fd, &st); !s.ok()) return s;
  return std::unique_ptr<LineReader>(
      new LineReader(fd, path != "-", path == "-" ? "standard input" : path, max_line, padding));
}

LineReader::LineReader(int fd, bool owned, std::string name, size_t max_line, size_t padding)
    : fd_(fd), owned_(owned), name_(std::move(name)), max_line_(max_line), padding_(padding) {
  buf_.resize(kBlock + max_line_ + padding_ + 1);
}

LineReader::~LineReader() {
  if (owned_) ::close(fd_);
}

Status LineReader::Fill() {
  if (start_ > 0) {  // the partial line to the front
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  if (before_read_) before_read_();
  for (;;) {
    ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - padding_ - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      return Status::Ok();
    }
    if (n == 0) {
      eof_ = true;
      return Status::Ok();
    }
    if (errno != EINTR) return Status::IoError(fmt::format("cannot read {}: {}", name_, std::strerror(errno)));
  }
}

Result<std::optional<LineReader::Line>> LineReader::Next() {
  for (;;) {
    const char* data = buf_.data();
    const void* nl = std::memchr(data + start_, '\n', end_ - start_);
    if (nl != nullptr || (eof_ && start_ < end_)) {
      size_t stop = nl ? static_cast<size_t>(static_cast<const char*>(nl) - data) : end_;
      Line line{std::string_view(data + start_, stop - start_), ++number_, skipping_ || stop - start_ > max_line_};
      if (line.too_long) line.text = {};
      skipping_ = false;
      start_ = nl ? stop + 1 : end_;
      return std::optional<Line>(line);
    }
    if (eof_) {
      if (skipping_) {  // a too-long last line without '\n'
        skipping_ = false;
        return std::optional<Line>(Line{{}, ++number_, true});
      }
      return std::optional<Line>();
    }
    if (end_ - start_ > max_line_) {  // drop what is held of a line already too long
      skipping_ = true;
      start_ = end_ = 0;
    }
    if (Status st = Fill(); !st.ok()) return st;
  }
}

}  // namespace cepheus
