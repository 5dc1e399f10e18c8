// ReadWholeFile: whole files in, errors as values.
#include "cepheus/common/file.h"

#include <unistd.h>

#include <cstdio>
#include <string>

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

}  // namespace
}  // namespace cepheus
