// ReadWholeFile: whole files in, errors as values.
#include "cepheus/common/file.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace cepheus {
namespace {

std::string TempPath(const char* tag) {
  return std::string("/tmp/cepheus_file_test_") + tag + "_" + std::to_string(::getpid());
}

TEST_CASE("a file of several read blocks is read whole, byte for byte") {
  std::string path = TempPath("big");
  std::string want;
  for (int i = 0; want.size() < (size_t{3} << 20) + 777; ++i) want += "{\"n\":" + std::to_string(i) + "}\n";
  want.pop_back();  // no newline at the end
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(std::fwrite(want.data(), 1, want.size(), f) == want.size());
  std::fclose(f);
  std::string got = "kept:";
  CHECK(ReadWholeFile(path, &got).ok());
  CHECK(got == "kept:" + want);
  std::remove(path.c_str());
}

TEST_CASE("an empty file reads as nothing") {
  std::string path = TempPath("empty");
  std::fclose(std::fopen(path.c_str(), "wb"));
  std::string got;
  CHECK(ReadWholeFile(path, &got).ok());
  CHECK(got.empty());
  std::remove(path.c_str());
}

TEST_CASE("a directory is an error naming it, not an exception") {
  std::string got;
  Status s = ReadWholeFile("/tmp", &got);
  CHECK(s.code() == Status::Code::kIoError);
  CHECK(s.message() == "cannot read /tmp: it is a directory");
}

TEST_CASE("a missing file is an error with the system's reason") {
  std::string got;
  Status s = ReadWholeFile("/nonexistent/events.jsonl", &got);
  CHECK(s.code() == Status::Code::kIoError);
  CHECK(s.message() == "cannot read /nonexistent/events.jsonl: No such file or directory");
}

TEST_CASE("an endless device is read up to the limit and refused, not until memory runs out") {
  std::string got;
  Status s = ReadWholeFile("/dev/zero", &got, 0, size_t{1} << 20);
  CHECK(s.code() == Status::Code::kLimitExceeded);
  CHECK(s.message() == "/dev/zero is larger than 1048576 bytes, the most cepheus reads of such a file");
  CHECK(got.size() <= (size_t{1} << 20) + 64 * 1024);
}

TEST_CASE("a regular file is read at its byte limit and refused one byte past it, before reading") {
  std::string path = TempPath("limit");
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  std::string body(1000, 'x');
  REQUIRE(std::fwrite(body.data(), 1, body.size(), f) == body.size());
  std::fclose(f);
  std::string got;
  CHECK(ReadWholeFile(path, &got, 0, 1000).ok());
  CHECK(got == body);
  got.clear();
  CHECK(ReadWholeFile(path, &got, 0, 999).code() == Status::Code::kLimitExceeded);
  CHECK(got.empty());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace cepheus

namespace cepheus {
namespace {

std::vector<std::string> ReadLines(const std::string& content, size_t max_line, std::vector<uint64_t>* too_long) {
  auto path = std::filesystem::temp_directory_path() / ("cepheus-lines-" + std::to_string(::getpid()));
  { std::ofstream(path, std::ios::binary) << content; }
  auto r = LineReader::Open(path.string(), max_line, 64);
  REQUIRE(r.ok());
  std::vector<std::string> lines;
  for (;;) {
    auto next = r.value()->Next();
    REQUIRE(next.ok());
    if (!next.value()) break;
    const auto& l = *next.value();
    CHECK(l.number == lines.size() + 1);
    if (l.too_long) too_long->push_back(l.number);
    // The padding after the line is readable (ASan would catch a read past it).
    volatile char past = l.text.data() == nullptr ? 0 : l.text.data()[l.text.size() + 63];
    (void)past;
    lines.emplace_back(l.text);
  }
  std::filesystem::remove(path);
  return lines;
}

}  // namespace

TEST_CASE("a line reader hands out every line, across block boundaries, the last one without its newline too") {
  std::string content;
  std::vector<std::string> want;
  for (int i = 0; i < 30000; ++i) {  // about 2.5 MiB: lines cross the 1 MiB blocks
    want.push_back(std::string(static_cast<size_t>(i % 150), static_cast<char>('a' + i % 26)));
    content += want.back() + "\n";
  }
  content += "last";
  want.push_back("last");
  std::vector<uint64_t> too_long;
  CHECK(ReadLines(content, 1 << 20, &too_long) == want);
  CHECK(too_long.empty());
}

TEST_CASE("a line past the limit is skipped without being held, in the middle and at the end of the input") {
  std::string big(3 << 20, 'x');  // three blocks
  std::vector<uint64_t> too_long;
  auto lines = ReadLines("a\n" + big + "\nb\n" + big, 1000, &too_long);
  CHECK(lines == std::vector<std::string>{"a", "", "b", ""});
  CHECK(too_long == std::vector<uint64_t>{2, 4});
  std::vector<uint64_t> at_limit;
  CHECK(ReadLines(std::string(1000, 'y') + "\n", 1000, &at_limit) == std::vector<std::string>{std::string(1000, 'y')});
  CHECK(at_limit.empty());
}

TEST_CASE("a line reader refuses a directory and names a missing file") {
  auto dir = LineReader::Open("/tmp", 100, 64);
  REQUIRE_FALSE(dir.ok());
  CHECK(dir.status().message() == "cannot read /tmp: it is a directory");
  auto missing = LineReader::Open("/nonexistent/x", 100, 64);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() == "cannot read /nonexistent/x: No such file or directory");
}

}  // namespace cepheus
