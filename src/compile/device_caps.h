// DeviceCaps — what the compiler and codegen may assume about the GPU. Plain C++, no Vulkan: the
// GPU layer fills it from the device (gpu::Context::caps()), tests fill it by hand to exercise the
// limits of devices they do not have.
//
//   compile::DeviceCaps caps = compile::DeviceCaps::default_for_tests();
//   caps.subgroup_size = 64;                  // pretend to be an AMD GPU in wave64 mode
//   caps.max_shared_memory_bytes = 16 * 1024; // and a small shared memory
//   Plan plan = compile(graph, caps);
//
// Every "supports_*" flag means the feature is usable end to end: the Vulkan headers declare it,
// the shader compiler builds it and the device reports it (the GPU layer enables it on the device).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace meganeura::compile {

// Component type of a cooperative-matrix operand (the subset of Vulkan's component types that
// kernels use).
enum class MatrixComponent : uint8_t { Float16, Float32, Float64, Int8, Int32, UInt8, UInt32, Other };

// One shape the device runs natively as a cooperative-matrix multiply-add: D(MxN) = A(MxK) B(KxN) + C.
struct CooperativeMatrixShape {
  uint32_t m = 0, n = 0, k = 0;
  MatrixComponent a_type = MatrixComponent::Float16;
  MatrixComponent b_type = MatrixComponent::Float16;
  MatrixComponent c_type = MatrixComponent::Float32;
  MatrixComponent result_type = MatrixComponent::Float32;
  bool operator==(const CooperativeMatrixShape&) const = default;
};

struct MemoryHeap {
  uint64_t size_bytes = 0;
  bool device_local = false;
};

struct DeviceCaps {
  std::string device_name = {};
  uint32_t vendor_id = 0;  // PCI vendor: 0x10DE NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x10005 Mesa (CPU)
  bool is_discrete = false;
  bool is_cpu = false;  // lavapipe/SwiftShader: correctness only, slow

  // Subgroup (warp/wave) size the device uses by default, and the range it can be asked for
  // (min == max == subgroup_size when subgroup size control is unavailable).
  uint32_t subgroup_size = 32;
  uint32_t min_subgroup_size = 32;
  uint32_t max_subgroup_size = 32;
  bool supports_subgroup_size_control = false;
  bool supports_subgroup_arithmetic = false;  // subgroupAdd/Max/... in compute shaders
  bool supports_subgroup_shuffle = false;

  // Streaming multiprocessors (NVIDIA) or compute units (AMD) where the device reports them; 0 when
  // it does not.
  uint32_t compute_units = 0;
  std::array<uint32_t, 3> max_workgroup_size = {1024, 1024, 64};
  uint32_t max_workgroup_invocations = 1024;
  std::array<uint32_t, 3> max_compute_workgroup_count = {65535, 65535, 65535};
  uint32_t max_shared_memory_bytes = 32 * 1024;
  uint64_t max_storage_buffer_range = 128ull << 20;  // bytes one storage-buffer binding may span
  uint64_t min_storage_buffer_offset_alignment = 256;
  uint32_t max_push_constant_bytes = 128;
  uint64_t max_memory_allocation_bytes = 1ull << 30;

  bool supports_fp16_arithmetic = false;  // float16_t math in shaders (shaderFloat16)
  bool supports_16bit_storage = false;    // float16_t/int16_t in storage buffers
  bool supports_int8 = false;             // int8 math and 8-bit storage
  bool supports_int64 = false;
  bool supports_timestamps = false;       // timestamp queries on the compute queue
  double timestamp_period_ns = 1.0;       // nanoseconds per timestamp tick

  bool supports_cooperative_matrix = false;  // VK_NV_cooperative_matrix, enabled on the device
  std::vector<CooperativeMatrixShape> cooperative_matrix_shapes = {};

  std::vector<MemoryHeap> memory_heaps = {};

  // Bytes of the largest device-local heap (0 when none is reported).
  uint64_t largest_device_local_heap() const {
    uint64_t best = 0;
    for (const auto& heap : memory_heaps) {
      if (heap.device_local && heap.size_bytes > best) best = heap.size_bytes;
    }
    return best;
  }

  // True when the device multiplies this shape natively.
  bool has_cooperative_matrix_shape(const CooperativeMatrixShape& shape) const {
    if (!supports_cooperative_matrix) return false;
    for (const auto& known : cooperative_matrix_shapes) {
      if (known == shape) return true;
    }
    return false;
  }

  // The limits of lavapipe (Mesa's CPU driver, the CI device) as reported by Mesa 22.3 with
  // 256-bit vectors: subgroup 8, 32 KiB of shared memory, no cooperative matrix.
  static DeviceCaps lavapipe_like() {
    DeviceCaps caps;
    caps.device_name = "llvmpipe (lavapipe-like, hand-made)";
    caps.vendor_id = 0x10005;
    caps.is_cpu = true;
    caps.subgroup_size = caps.min_subgroup_size = caps.max_subgroup_size = 8;
    caps.supports_subgroup_size_control = true;
    caps.supports_subgroup_arithmetic = true;
    caps.supports_subgroup_shuffle = true;
    caps.max_workgroup_size = {1024, 1024, 1024};
    caps.max_workgroup_invocations = 1024;
    caps.max_compute_workgroup_count = {65535, 65535, 65535};
    caps.max_shared_memory_bytes = 32 * 1024;
    caps.max_storage_buffer_range = 1ull << 27;
    caps.min_storage_buffer_offset_alignment = 16;
    caps.max_push_constant_bytes = 128;
    caps.max_memory_allocation_bytes = 1ull << 31;
    caps.supports_fp16_arithmetic = true;
    caps.supports_16bit_storage = true;
    caps.supports_int8 = true;
    caps.supports_int64 = true;
    caps.supports_timestamps = true;
    caps.timestamp_period_ns = 1.0;
    caps.memory_heaps = {{2ull << 30, true}};
    return caps;
  }

  // A mid-range discrete GPU (NVIDIA-like: subgroup 32, 48 KiB shared memory, f16 cooperative
  // matrices 16x16x16 and 16x8x16). Tests use it to exercise the paths lavapipe would not pick.
  static DeviceCaps default_for_tests() {
    DeviceCaps caps;
    caps.device_name = "test GPU (hand-made)";
    caps.vendor_id = 0x10DE;
    caps.is_discrete = true;
    caps.subgroup_size = caps.min_subgroup_size = caps.max_subgroup_size = 32;
    caps.supports_subgroup_size_control = true;
    caps.supports_subgroup_arithmetic = true;
    caps.supports_subgroup_shuffle = true;
    caps.max_workgroup_size = {1024, 1024, 64};
    caps.max_workgroup_invocations = 1024;
    caps.max_compute_workgroup_count = {2147483647u, 65535, 65535};
    caps.max_shared_memory_bytes = 48 * 1024;
    caps.max_storage_buffer_range = 0xFFFFFFFFull;
    caps.min_storage_buffer_offset_alignment = 16;
    caps.max_push_constant_bytes = 256;
    caps.max_memory_allocation_bytes = 1ull << 32;
    caps.supports_fp16_arithmetic = true;
    caps.supports_16bit_storage = true;
    caps.supports_int8 = true;
    caps.supports_int64 = true;
    caps.supports_timestamps = true;
    caps.timestamp_period_ns = 1.0;
    caps.supports_cooperative_matrix = true;
    using C = MatrixComponent;
    caps.cooperative_matrix_shapes = {{16, 16, 16, C::Float16, C::Float16, C::Float32, C::Float32},
                                      {16, 8, 16, C::Float16, C::Float16, C::Float32, C::Float32},
                                      {16, 16, 16, C::Float16, C::Float16, C::Float16, C::Float16}};
    caps.memory_heaps = {{16ull << 30, true}, {32ull << 30, false}};
    return caps;
  }
};

// "f16", "f32", "i8", ... for messages and `meganeura info`.
inline const char* to_string(MatrixComponent component) {
  switch (component) {
    case MatrixComponent::Float16: return "f16";
    case MatrixComponent::Float32: return "f32";
    case MatrixComponent::Float64: return "f64";
    case MatrixComponent::Int8: return "i8";
    case MatrixComponent::Int32: return "i32";
    case MatrixComponent::UInt8: return "u8";
    case MatrixComponent::UInt32: return "u32";
    case MatrixComponent::Other: return "other";
  }
  return "other";
}

}  // namespace meganeura::compile
