// ReadWholeFile: read(2) until end of file, into a buffer reserved at the
// file's size (plus the caller's spare room) when it is a regular file, so a
// file is read with one allocation and no copy; pipes grow it as they go. A
// directory is refused before reading (read(2) would fail with EISDIR, and
// iostreams turn that into an exception or a silent empty read).
#include "cepheus/common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace cepheus {

Status ReadWholeFile(const std::string& path, std::string* out, size_t spare) {
  const bool stdin_ = path == "-";
  const std::string name = stdin_ ? "standard input" : path;
  int fd = 0;
  if (!stdin_) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IoError(fmt::format("cannot read {}: {}", name, std::strerror(errno)));
  }
  auto close = [&] {
    if (!stdin_) ::close(fd);
  };
  struct stat st {};
  bool regular = false;
  if (::fstat(fd, &st) == 0) {
    regular = S_ISREG(st.st_mode);
    if (S_ISDIR(st.st_mode)) {
      close();
      return Status::IoError(fmt::format("cannot read {}: it is a directory", name));
    }
    if (regular && st.st_size > 0) out->reserve(out->size() + static_cast<size_t>(st.st_size) + spare + 1);
  }
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
    if (n > 0) continue;
    if (n == 0) break;
    if (errno == EINTR) continue;
    int err = errno;
    close();
    return Status::IoError(fmt::format("cannot read {}: {}", name, std::strerror(err)));
  }
  close();
  return Status::Ok();
}

}  // namespace cepheus
