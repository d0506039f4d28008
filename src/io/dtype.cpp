// Element types of SafeTensors files and conversions between them.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace meganeura {
namespace {

struct DTypeEntry {
  SafeTensorsDType dtype;
  std::string_view name;
  size_t size;
};
constexpr DTypeEntry dtype_table[] = {
    {SafeTensorsDType::F64, "F64", 8}, {SafeTensorsDType::F32, "F32", 4}, {SafeTensorsDType::F16, "F16", 2}, {SafeTensorsDType::BF16, "BF16", 2},
    {SafeTensorsDType::I64, "I64", 8}, {SafeTensorsDType::I32, "I32", 4}, {SafeTensorsDType::I16, "I16", 2}, {SafeTensorsDType::I8, "I8", 1},
    {SafeTensorsDType::U8, "U8", 1},   {SafeTensorsDType::Bool, "BOOL", 1},
};

const DTypeEntry& entry(SafeTensorsDType dtype) {
  for (const auto& e : dtype_table)
    if (e.dtype == dtype) return e;
  throw Error("invalid SafeTensorsDType value " + std::to_string(static_cast<int>(dtype)));
}

// Little-endian loads from possibly unaligned memory (the data section of a memory map has no
// alignment guarantee).
template <typename T>
T load(const std::byte* p) {
  static_assert(std::endian::native == std::endian::little, "SafeTensors data is little-endian");
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

void require_size(const TensorInfo& tensor) {
  const int64_t count = tensor.element_count();
  if (static_cast<uint64_t>(count) * dtype_size(tensor.dtype) != tensor.bytes.size())
    throw Error("tensor '" + tensor.name + "': " + std::to_string(tensor.bytes.size()) + " bytes do not hold shape " +
                format_shape(tensor.shape) + " of " + std::string(dtype_name(tensor.dtype)));
}

template <typename T>
float exact_f32(const TensorInfo& tensor, T value) {
  const float f = static_cast<float>(value);
  // Converting back is only defined inside T's range, hence the bound before the round trip.
  const bool exact = std::abs(static_cast<double>(f)) < 9.2e18 && static_cast<T>(f) == value;
  if (!exact)
    throw Error("tensor '" + tensor.name + "' (" + std::string(dtype_name(tensor.dtype)) + ") holds " +
                std::to_string(value) + ", which f32 cannot represent exactly; read it with to_i32");
  return f;
}

template <typename T>
int32_t exact_i32(const TensorInfo& tensor, T value) {
  if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max())
    throw Error("tensor '" + tensor.name + "' (" + std::string(dtype_name(tensor.dtype)) + ") holds " +
                std::to_string(value) + ", which does not fit in i32");
  return static_cast<int32_t>(value);
}

}  // namespace

std::string_view dtype_name(SafeTensorsDType dtype) { return entry(dtype).name; }
size_t dtype_size(SafeTensorsDType dtype) { return entry(dtype).size; }

SafeTensorsDType safetensors_dtype_from_name(std::string_view name) {
  for (const auto& e : dtype_table)
    if (e.name == name) return e.dtype;
  throw Error("unknown dtype '" + std::string(name) +
              "' (known: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
}

float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa × 2^-24, exact in f32.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_bf16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

uint16_t f32_to_f16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((magnitude >> 13) & 0x3ffu);
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // ≥ 65520 rounds to infinity
  const uint32_t exponent = magnitude >> 23;
  if (exponent < 113) {
    // Subnormal half: the value in units of 2^-24, rounded to nearest even.
    const uint32_t shift = 126 - exponent;
    if (shift > 24) return sign;
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t q = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (remainder > half || (remainder == half && (q & 1u))) ++q;
    return sign | static_cast<uint16_t>(q);
  }
  uint32_t h = ((exponent - 112) << 10) | ((magnitude >> 13) & 0x3ffu);
  const uint32_t remainder = magnitude & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
  return sign | static_cast<uint16_t>(h);
}

int64_t TensorInfo::element_count() const {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return count;
}

std::vector<float> tensor_to_f32(const TensorInfo& tensor) {
  require_size(tensor);
  const size_t n = static_cast<size_t>(tensor.element_count());
  const std::byte* p = tensor.bytes.data();
  std::vector<float> out(n);
  switch (tensor.dtype) {
    case SafeTensorsDType::F32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case SafeTensorsDType::F64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<double>(p + 8 * i));
      break;
    case SafeTensorsDType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load<uint16_t>(p + 2 * i));
      break;
    case SafeTensorsDType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load<uint16_t>(p + 2 * i));
      break;
    case SafeTensorsDType::I64:
      for (size_t i = 0; i < n; ++i) out[i] = exact_f32(tensor, load<int64_t>(p + 8 * i));
      break;
    case SafeTensorsDType::I32:
      for (size_t i = 0; i < n; ++i) out[i] = exact_f32(tensor, load<int32_t>(p + 4 * i));
      break;
    case SafeTensorsDType::I16:
      for (size_t i = 0; i < n; ++i) out[i] = load<int16_t>(p + 2 * i);
      break;
    case SafeTensorsDType::I8:
      for (size_t i = 0; i < n; ++i) out[i] = load<int8_t>(p + i);
      break;
    case SafeTensorsDType::U8:
      for (size_t i = 0; i < n; ++i) out[i] = load<uint8_t>(p + i);
      break;
    case SafeTensorsDType::Bool:
      for (size_t i = 0; i < n; ++i) out[i] = load<uint8_t>(p + i) ? 1.0f : 0.0f;
      break;
  }
  return out;
}

std::vector<int32_t> tensor_to_i32(const TensorInfo& tensor) {
  require_size(tensor);
  const size_t n = static_cast<size_t>(tensor.element_count());
  const std::byte* p = tensor.bytes.data();
  std::vector<int32_t> out(n);
  switch (tensor.dtype) {
    case SafeTensorsDType::I32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case SafeTensorsDType::I64:
      for (size_t i = 0; i < n; ++i) out[i] = exact_i32(tensor, load<int64_t>(p + 8 * i));
      break;
    case SafeTensorsDType::I16:
      for (size_t i = 0; i < n; ++i) out[i] = load<int16_t>(p + 2 * i);
      break;
    case SafeTensorsDType::I8:
      for (size_t i = 0; i < n; ++i) out[i] = load<int8_t>(p + i);
      break;
    case SafeTensorsDType::U8:
      for (size_t i = 0; i < n; ++i) out[i] = load<uint8_t>(p + i);
      break;
    case SafeTensorsDType::Bool:
      for (size_t i = 0; i < n; ++i) out[i] = load<uint8_t>(p + i) ? 1 : 0;
      break;
    default:
      throw Error("tensor '" + tensor.name + "' is " + std::string(dtype_name(tensor.dtype)) +
                  "; to_i32 reads integer and BOOL tensors (use to_f32 for floating point)");
  }
  return out;
}

}  // namespace meganeura
