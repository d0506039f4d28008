#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "io_test_util.h"
#include "meganeura/error.h"
#include "meganeura/safetensors.h"

using namespace meganeura;
using meganeura::testing_io::float_bits;

namespace {
float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
TensorInfo view(std::string name, SafeTensorsDType dtype, std::vector<int64_t> shape, const void* data, size_t size) {
  return {std::move(name), dtype, std::move(shape), {static_cast<const std::byte*>(data), size}};
}
}  // namespace

TEST(SafeTensorsDType, NamesAndSizes) {
  EXPECT_EQ(dtype_name(SafeTensorsDType::BF16), "BF16");
  EXPECT_EQ(dtype_name(SafeTensorsDType::Bool), "BOOL");
  EXPECT_EQ(dtype_size(SafeTensorsDType::F64), 8u);
  EXPECT_EQ(dtype_size(SafeTensorsDType::I16), 2u);
  EXPECT_EQ(safetensors_dtype_from_name("U8"), SafeTensorsDType::U8);
  EXPECT_THROW(safetensors_dtype_from_name("f32"), Error);  // names are case-sensitive in the format
}

TEST(SafeTensorsDType, HalfRoundTripsEveryBitPattern) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = f16_to_f32(static_cast<uint16_t>(bits));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), bits) << "half 0x" << std::hex << bits;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
}

TEST(SafeTensorsDType, HalfRoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bffu);                   // below the halfway point: max finite
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);                   // halfway rounds to even: infinity
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00u);      // tie → even (1.0)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02u);  // tie → even (upwards)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000u);             // tie between 0 and the smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001u);
  EXPECT_EQ(f32_to_f16(-std::ldexp(3.0f, -25)), 0x8002u);            // 1.5 units → 2
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000u);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000u);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00u);
  EXPECT_EQ(f32_to_f16(std::nanf("")) & 0x7c00u, 0x7c00u);
  // Against f64 arithmetic on random values: the result is the nearest half.
  for (float v : testing_io::random_floats(2000, 3)) {
    const float scaled = v * 100.0f;
    const double got = f16_to_f32(f32_to_f16(scaled));
    const double up = f16_to_f32(static_cast<uint16_t>(f32_to_f16(scaled) + 1));
    const double down = f16_to_f32(static_cast<uint16_t>(f32_to_f16(scaled) - 1));
    EXPECT_LE(std::abs(got - scaled), std::abs(up - scaled)) << scaled;
    EXPECT_LE(std::abs(got - scaled), std::abs(down - scaled)) << scaled;
  }
}

TEST(SafeTensorsDType, Bfloat16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80u);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82u);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81u);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80u);  // max float rounds to infinity
  EXPECT_EQ(f32_to_bf16(std::nanf("")) & 0x7f80u, 0x7f80u);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = bf16_to_f32(static_cast<uint16_t>(bits));
    EXPECT_EQ(float_bits(f), bits << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(f32_to_bf16(f), bits);
    }
  }
}

TEST(SafeTensorsDType, IntegerTensorsConvertWhenLossless) {
  const std::vector<int64_t> small = {-3, 0, 7, 1 << 20};
  const auto small_view = view("small", SafeTensorsDType::I64, {4}, small.data(), 32);
  EXPECT_EQ(tensor_to_i32(small_view), (std::vector<int32_t>{-3, 0, 7, 1 << 20}));
  EXPECT_EQ(tensor_to_f32(small_view), (std::vector<float>{-3, 0, 7, 1 << 20}));

  const std::vector<int64_t> large = {1, int64_t{1} << 40};
  try {
    tensor_to_i32(view("large", SafeTensorsDType::I64, {2}, large.data(), 16));
    FAIL() << "2^40 was narrowed to i32";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit in i32"), std::string::npos) << e.what();
  }
  const std::vector<int32_t> odd = {(1 << 24) + 1};
  EXPECT_THROW(tensor_to_f32(view("odd", SafeTensorsDType::I32, {1}, odd.data(), 4)), Error);

  const std::vector<uint8_t> flags = {1, 0, 1};
  EXPECT_EQ(tensor_to_i32(view("flags", SafeTensorsDType::Bool, {3}, flags.data(), 3)), (std::vector<int32_t>{1, 0, 1}));
  const std::vector<int8_t> bytes = {-128, 5};
  EXPECT_EQ(tensor_to_f32(view("bytes", SafeTensorsDType::I8, {2}, bytes.data(), 2)), (std::vector<float>{-128, 5}));
  const std::vector<double> doubles = {0.5, -1.25};
  EXPECT_EQ(tensor_to_f32(view("d", SafeTensorsDType::F64, {2}, doubles.data(), 16)), (std::vector<float>{0.5f, -1.25f}));
}
