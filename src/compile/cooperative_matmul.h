// The cooperative-matrix form of a matmul kernel (VK_NV_cooperative_matrix, f16 × f16 → f32): a
// workgroup of 8 subgroups computes a 128×128 tile of the output through 16×16×16 matrix
// multiply-adds, staging 32-deep slices of A and B in shared memory as f16.
//
//   compile::Plan plan = compile::compile(graph, caps);   // selects it where it applies
//   plan.kernels[0].cooperative_matrix;                   // true: codegen writes the coop shader
//
// It applies when the device runs the 16×16×16 f16/f32 shape with 32-wide subgroups and enough
// shared memory, and the product's operands are f16 values: both graph operands of dtype f16, or a
// B operand of weights stored as f16 (CompileOptions::weight_storage), whose activations are then
// rounded to f16 as they are staged. One-row products keep the GEMV form (bandwidth-bound).
#pragma once

#include <cstdint>

#include "compile/device_caps.h"
#include "compile/plan.h"

namespace meganeura::compile {

struct CooperativeMatmulTiles {
  static constexpr uint32_t rows = 128;        // output rows per workgroup
  static constexpr uint32_t columns = 128;     // output columns per workgroup
  static constexpr uint32_t depth = 32;        // K per shared-memory slice
  static constexpr uint32_t invocations = 256; // 8 subgroups of 32, as 2 × 4 over the tile
  static constexpr uint32_t subgroup_rows = 2;
  static constexpr uint32_t subgroup_columns = 4;
  static constexpr uint32_t pad = 8;           // f16 elements of padding per staged row (banks)
};

// Shared memory the form needs: two stages of A and B tiles plus a 16×16 f32 tile per subgroup.
uint32_t cooperative_matmul_shared_bytes(bool transpose_a, bool transpose_b);

// The device side: the shape, subgroup size, workgroup size and shared memory the form needs.
bool device_runs_cooperative_matmul(const DeviceCaps& caps);

// Whether an m × n product (batch of `batch`) has enough 128×128 tiles for the form on `caps`: at
// least half a wave where the device reports its compute units. The form does not split K, so a
// few tiles leave most of the device idle while the scalar forms split K over all of it (SmolLM2's
// 128-token prefill with f16 weights, 5 to 12 tiles a product: 5.96 ms through the form, 3.75 ms
// without it, H100).
bool cooperative_tiles_fill_device(int64_t m, int64_t n, int64_t batch, const DeviceCaps& caps);

// Whether this matmul kernel of `plan` takes the form on `caps`.
bool takes_cooperative_matmul(const Plan& plan, const Kernel& kernel, const DeviceCaps& caps);

// Marks the matmul kernels that take the form and sizes their dispatch.
void select_cooperative_matmuls(Plan& plan, const DeviceCaps& caps);

}  // namespace meganeura::compile
