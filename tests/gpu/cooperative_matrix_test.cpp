// A cooperative-matrix GEMM (VK_NV_cooperative_matrix, f16 x f16 + f32) through the GPU layer:
// compiled everywhere, run where the device offers the 16x16x16 shape (not on lavapipe, so this
// runs on the GPU host).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/pipeline.h"
#include "gpu/recording.h"
#include "gpu/shader_compiler.h"
#include "gpu/transfer.h"
#include "test_shaders.h"

namespace meganeura::gpu {
namespace {

// d = a (m x k) * b (k x n), row-major, one subgroup per 16x16 tile of d; sizes multiples of 16.
constexpr const char* kCoopMatmul = R"(#version 450
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer A { float16_t a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float16_t b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer D { float d[]; };
layout(push_constant) uniform Push { uint m; uint n; uint k; } push;
void main() {
  uint row = gl_WorkGroupID.y * 16, col = gl_WorkGroupID.x * 16;
  fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
  for (uint kk = 0; kk < push.k; kk += 16) {
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> tile_a;
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> tile_b;
    coopMatLoadNV(tile_a, a, row * push.k + kk, push.k, false);
    coopMatLoadNV(tile_b, b, kk * push.n + col, push.n, false);
    acc = coopMatMulAddNV(tile_a, tile_b, acc);
  }
  coopMatStoreNV(acc, d, row * push.n + col, push.n, false);
}
)";

// Half-precision bits of q / 8 for a small integer q (exact in f16: no rounding needed).
uint16_t half_of_eighths(int q) {
  if (q == 0) return 0;
  const float value = float(q) / 8.0f;
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint32_t sign = bits >> 31;
  const int exponent = int((bits >> 23) & 0xff) - 127 + 15;
  const uint32_t mantissa = (bits >> 13) & 0x3ff;
  return uint16_t((sign << 15) | (uint32_t(exponent) << 10) | mantissa);
}

TEST(GpuCooperativeMatrix, GemmMatchesTheCpuWhereSupported) {
  ShaderCompiler compiler;
  const auto spirv = compiler.compile(kCoopMatmul, {.name = "coop_matmul"});  // compiles on every host
  auto context = Context::shared();
  const auto& caps = context->caps();
  using C = compile::MatrixComponent;
  if (!caps.has_cooperative_matrix_shape({16, 16, 16, C::Float16, C::Float16, C::Float32, C::Float32}) ||
      !caps.supports_16bit_storage || !caps.supports_fp16_arithmetic) {
    GTEST_SKIP() << caps.device_name << " has no f16 16x16x16 cooperative matrix";
  }
  const uint32_t m = 64, n = 48, k = 80;
  std::mt19937 rng(11);
  std::vector<int> qa(m * k), qb(k * n);
  for (auto& q : qa) q = int(rng() % 17) - 8;
  for (auto& q : qb) q = int(rng() % 17) - 8;
  std::vector<uint16_t> ha(qa.size()), hb(qb.size());
  for (size_t i = 0; i < qa.size(); ++i) ha[i] = half_of_eighths(qa[i]);
  for (size_t i = 0; i < qb.size(); ++i) hb[i] = half_of_eighths(qb[i]);
  Buffer a(context, ha.size() * 2, MemoryKind::DeviceLocal, "a");
  Buffer b(context, hb.size() * 2, MemoryKind::DeviceLocal, "b");
  Buffer d(context, m * n * 4, MemoryKind::DeviceLocal, "d");
  upload(a, 0, std::as_bytes(std::span(ha)));
  upload(b, 0, std::as_bytes(std::span(hb)));
  fill(d, testing::kPoison);
  Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = 12,
                              .specialization = {{0, caps.subgroup_size}}, .label = "coop_matmul"});
  DescriptorSet bindings(pipeline, {{&a}, {&b}, {&d}});
  Recording recording(context);
  recording.dispatch(pipeline, bindings, testing::push_bytes(m, n, k), {n / 16, m / 16, 1});
  recording.finish();
  recording.run();
  std::vector<float> got(m * n);
  download(d, 0, std::as_writable_bytes(std::span(got)));
  // Products of eighths summed in f32 are exact here, so the results must match exactly.
  for (uint32_t i = 0; i < m; ++i) {
    for (uint32_t j = 0; j < n; ++j) {
      double want = 0;
      for (uint32_t p = 0; p < k; ++p) want += (qa[i * k + p] / 8.0) * (qb[p * n + j] / 8.0);
      ASSERT_EQ(got[i * n + j], float(want)) << "d[" << i << "][" << j << "]";
    }
  }
}

}  // namespace
}  // namespace meganeura::gpu
