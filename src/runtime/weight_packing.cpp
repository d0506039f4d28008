#include "runtime/weight_packing.h"

#include <cstring>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace meganeura::runtime {

std::vector<std::byte> pack_weight_bits(std::span<const uint16_t> bits) {
  std::vector<std::byte> bytes((bits.size() + 1) / 2 * 4);  // an odd count leaves the last high half zero
  std::memcpy(bytes.data(), bits.data(), bits.size() * 2);   // little-endian: element 2w is word w's low half
  return bytes;
}

std::vector<std::byte> pack_weights(std::span<const float> values, compile::ElementStorage element) {
  if (element == compile::ElementStorage::bits32) throw Error("pack_weights: the storage is not 16-bit");
  std::vector<uint16_t> bits(values.size());
  const bool f16 = element == compile::ElementStorage::packed_f16;
  for (size_t i = 0; i < values.size(); ++i) bits[i] = f16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
  return pack_weight_bits(bits);
}

std::vector<float> unpack_weights(std::span<const std::byte> bytes, size_t count, compile::ElementStorage element) {
  if (element == compile::ElementStorage::bits32) throw Error("unpack_weights: the storage is not 16-bit");
  if (bytes.size() < count * 2) throw Error("unpack_weights: " + std::to_string(bytes.size()) + " bytes hold fewer than " +
                                            std::to_string(count) + " 16-bit values");
  std::vector<float> values(count);
  const bool f16 = element == compile::ElementStorage::packed_f16;
  for (size_t i = 0; i < count; ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    values[i] = f16 ? f16_to_f32(bits) : bf16_to_f32(bits);
  }
  return values;
}

}  // namespace meganeura::runtime
