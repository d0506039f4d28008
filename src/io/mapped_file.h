// A read-only memory map of a whole file (POSIX mmap), unmapped on destruction.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace meganeura::io {

class MappedFile {
 public:
  // Throws Error naming `path` when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace meganeura::io
