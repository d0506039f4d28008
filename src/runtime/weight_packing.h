// Host side of weights stored as 16-bit (compile/weight_storage.h): f32 values packed two per
// 32-bit word on upload (rounded to nearest even), widened back on readback.
//
//   auto bytes = runtime::pack_weights(values, compile::ElementStorage::packed_bf16);
//   std::vector<float> back = runtime::unpack_weights(bytes, values.size(), compile::ElementStorage::packed_bf16);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "compile/plan.h"

namespace meganeura::runtime {

std::vector<std::byte> pack_weights(std::span<const float> values, compile::ElementStorage element);
// 16-bit bit patterns already in the storage's format, laid out as the packed buffer.
std::vector<std::byte> pack_weight_bits(std::span<const uint16_t> bits);
std::vector<float> unpack_weights(std::span<const std::byte> bytes, size_t count, compile::ElementStorage element);

}  // namespace meganeura::runtime
