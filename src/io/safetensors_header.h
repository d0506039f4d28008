// Validation of a SafeTensors file image: the 8-byte header length, the JSON header and the layout
// of the data section. Kept apart from the memory map so that the fuzzers can drive it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "meganeura/safetensors.h"

namespace meganeura::io {

inline constexpr uint64_t max_safetensors_header_bytes = 100'000'000;

struct HeaderEntry {
  std::string name;
  SafeTensorsDType dtype = SafeTensorsDType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets inside the data section
  uint64_t end = 0;
};

struct ParsedHeader {
  std::vector<HeaderEntry> tensors;  // ascending data offsets
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts in the file
};

// Throws Error("<label>: <problem>") for anything the format does not allow.
ParsedHeader parse_safetensors(std::span<const std::byte> file, const std::string& label);

}  // namespace meganeura::io
