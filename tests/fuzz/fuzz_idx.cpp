// libFuzzer target: the IDX reader (plain and gzip). read_idx takes a path, so each input is
// placed in an in-memory file reached through /proc/self/fd.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "meganeura/data.h"
#include "meganeura/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = ::memfd_create("fuzz_idx", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  try {
    (void)meganeura::data::read_idx(path);
  } catch (const meganeura::Error&) {
  }
  return 0;
}
