// libFuzzer target: the SafeTensors parser and the conversions behind it. Any input must either
// load or be rejected with meganeura::Error; the sanitizers catch everything else.
#include <cstddef>
#include <cstdint>
#include <span>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = meganeura::SafeTensorsFile::from_bytes(
        std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz.safetensors");
    for (const auto& tensor : file.tensors()) {
      if (tensor.bytes.size() > (1u << 20)) continue;  // conversion cost, not parsing, beyond this
      try {
        (void)file.to_f32(tensor.name);
      } catch (const meganeura::Error&) {
      }
      try {
        (void)file.to_i32(tensor.name);
      } catch (const meganeura::Error&) {
      }
    }
    (void)file.metadata();
  } catch (const meganeura::Error&) {
  }
  return 0;
}
