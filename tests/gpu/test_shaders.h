// Hand-written compute shaders that exercise the GPU layer (production kernels come from codegen),
// plus small helpers shared by the tests of tests/gpu.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace meganeura::gpu::testing {

// out[i] = a[i] + scale * b[i] for i < count. Workgroup size: specialization constant 0.
inline constexpr const char* kVectorAdd = R"(#version 450
layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint count; float scale; } push;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < push.count) result[i] = a[i] + push.scale * b[i];
}
)";

// sums[row] = sum of x[row * columns .. row * columns + columns), one workgroup per row, a shared
// memory tree reduction. Workgroup size (a power of two): specialization constant 0.
inline constexpr const char* kRowSum = R"(#version 450
layout(constant_id = 0) const uint WORKGROUP = 64;
layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Sums { float sums[]; };
layout(push_constant) uniform Push { uint rows; uint columns; } push;
shared float partial[WORKGROUP];
void main() {
  uint row = gl_WorkGroupID.x;
  uint lane = gl_LocalInvocationID.x;
  float total = 0.0;
  for (uint c = lane; c < push.columns; c += WORKGROUP) total += x[row * push.columns + c];
  partial[lane] = total;
  barrier();
  for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
    if (lane < stride) partial[lane] += partial[lane + stride];
    barrier();
  }
  if (lane == 0) sums[row] = partial[0];
}
)";

// c = a (m x k) * b (k x n), row-major, through TILE x TILE tiles in shared memory; sizes need not
// be multiples of the tile. TILE: specialization constant 0 (also the workgroup's x and y size).
inline constexpr const char* kTiledMatmul = R"(#version 450
layout(constant_id = 0) const uint TILE = 8;
layout(local_size_x_id = 0, local_size_y_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer C { float c[]; };
layout(push_constant) uniform Push { uint m; uint n; uint k; } push;
shared float tile_a[TILE * TILE];
shared float tile_b[TILE * TILE];
void main() {
  uint col = gl_WorkGroupID.x * TILE + gl_LocalInvocationID.x;
  uint row = gl_WorkGroupID.y * TILE + gl_LocalInvocationID.y;
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  float acc = 0.0;
  for (uint t = 0; t < push.k; t += TILE) {
    uint ak = t + tx, bk = t + ty;
    tile_a[ty * TILE + tx] = (row < push.m && ak < push.k) ? a[row * push.k + ak] : 0.0;
    tile_b[ty * TILE + tx] = (bk < push.k && col < push.n) ? b[bk * push.n + col] : 0.0;
    barrier();
    for (uint i = 0; i < TILE; ++i) acc += tile_a[ty * TILE + i] * tile_b[i * TILE + tx];
    barrier();
  }
  if (row < push.m && col < push.n) c[row * push.n + col] = acc;
}
)";

// values[i] += delta[i]: replaying it N times adds N * delta.
inline constexpr const char* kAccumulate = R"(#version 450
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) buffer Values { float values[]; };
layout(std430, set = 0, binding = 1) readonly buffer Delta { float delta[]; };
layout(push_constant) uniform Push { uint count; } push;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < push.count) values[i] += delta[i];
}
)";

// Bits of a quiet NaN: poisoned outputs that a kernel fails to write stay NaN.
inline constexpr uint32_t kPoison = 0x7fc0dead;

inline std::vector<float> random_floats(size_t count, uint32_t seed, float low = -1.0f, float high = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(count);
  for (auto& v : values) v = dist(rng);
  return values;
}

inline bool is_poison(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits == kPoison;
}

// Push-constant bytes from a list of 32-bit values.
template <class... T>
std::vector<std::byte> push_bytes(T... values) {
  static_assert(((sizeof(T) == 4) && ...), "push constants here are 32-bit values");
  std::vector<std::byte> bytes(4 * sizeof...(T));
  size_t offset = 0;
  ((std::memcpy(bytes.data() + offset, &values, 4), offset += 4), ...);
  return bytes;
}

}  // namespace meganeura::gpu::testing
