// An RMSNorm or a pointwise op (a SwiGLU) read only by a one-row product with weights stored
// [N, K] is computed inside that product's GEMV kernel (compile/grouping.h: computes_gemv_operand):
// which graphs fuse, and the fused kernels against the CPU reference with a bias and activation
// epilogue, batches, rows that are not a multiple of the 32 lanes, rows too long to stage in shared
// memory, and 16-bit weights read in pairs and in 16-byte runs.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

struct Fused {
  size_t kernels = 0;
  bool norm_in_gemv = false;
  bool pointwise_in_gemv = false;
};

Fused plan_of(const Graph& graph, DType storage = DType::f32) {
  compile::CompileOptions options;
  options.weight_storage = storage;
  const compile::Plan plan = compile::compile(graph, compile::DeviceCaps::default_for_tests(), options);
  Fused fused;
  fused.kernels = plan.kernels.size();
  for (const compile::Kernel& kernel : plan.kernels) {
    bool norm = false, swiglu = false;
    for (int32_t id : kernel.nodes) {
      norm |= plan.graph.node(id).op == Op::rms_norm;
      swiglu |= plan.graph.node(id).op == Op::swiglu;
    }
    const bool gemv = kernel.archetype == compile::Archetype::matmul && kernel.local_size[1] == 1;
    fused.norm_in_gemv |= norm && gemv;
    fused.pointwise_in_gemv |= swiglu && gemv;
  }
  return fused;
}

// x [batch, 1, k] → rms_norm → · wᵀ (+ bias, relu).
Graph normed_row(int64_t batch, int64_t k, int64_t n, bool linear) {
  Graph g;
  Tensor x = g.input("x", {batch, 1, k});
  Tensor gain = g.parameter("gain", {k}, Init::normal(1.0, 0.3));
  Tensor w = g.parameter("w", {n, k}, Init::normal(0.0, 0.3));
  Tensor h = g.rms_norm(x * 3.0, gain, 1e-5);
  if (linear) {
    Tensor b = g.parameter("b", {n}, Init::normal(0.0, 0.3));
    g.set_outputs({g.relu(g.linear(h, w, b, false, true))});
  } else {
    g.set_outputs({g.matmul(h, w, false, true)});
  }
  return g;
}

// A transformer MLP for one token as decoding runs it: gate and up in one product over stacked
// weights, SwiGLU of the two halves, the down projection plus the residual.
Graph swiglu_mlp(int64_t batch, int64_t width, int64_t hidden) {
  Graph g;
  Tensor x = g.input("x", {batch, 1, width});
  Tensor gate_up = g.parameter("gate_up", {2 * hidden, width}, Init::normal(0.0, 0.3));
  Tensor down = g.parameter("down", {width, hidden}, Init::normal(0.0, 0.3));
  Tensor both = g.matmul(x, gate_up, false, true);
  Tensor act = g.swiglu(g.slice(both, 2, 0, hidden), g.slice(both, 2, hidden, 2 * hidden));
  g.set_outputs({g.matmul(act, down, false, true) + x});
  return g;
}

// Without subgroups the kernel adds up its sums in shared memory instead of with subgroupAdd.
double gemv_error(const Graph& graph, DType storage, uint32_t seed, bool subgroups = true) {
  compile::DeviceCaps caps = kernel_tests::test_caps(false);
  if (!subgroups) caps.supports_subgroup_arithmetic = false;
  return kernel_tests::errors_on_held_parameters(graph, storage, caps, seed)[0];
}

TEST(GemvPrologue, OnlyOneRowProductsOfAPrivateNormFuse) {
  EXPECT_TRUE(plan_of(normed_row(1, 96, 70, false)).norm_in_gemv);
  EXPECT_EQ(plan_of(normed_row(1, 96, 70, false)).kernels, 2u);  // x · 3, then the norm inside the GEMV
  EXPECT_TRUE(plan_of(normed_row(3, 96, 70, true)).norm_in_gemv);  // batched rows, bias + relu epilogue
  // Four rows: the tiled form normalizes them (tests/kernels/normalized_product_test.cpp).
  Graph rows;
  Tensor x = rows.input("x", {4, 96});
  Tensor w = rows.parameter("w", {70, 96});
  rows.set_outputs({rows.matmul(rows.rms_norm(x, rows.parameter("gain", {96})), w, false, true)});
  EXPECT_FALSE(plan_of(rows).norm_in_gemv);
  EXPECT_EQ(plan_of(rows).kernels, 1u);
  // A norm that is also an output (read twice) stays its own kernel.
  Graph shared;
  Tensor y = shared.input("y", {1, 96});
  Tensor normed = shared.rms_norm(y, shared.parameter("gain", {96}));
  shared.set_outputs({shared.matmul(normed, shared.parameter("w", {70, 96}), false, true), normed});
  EXPECT_FALSE(plan_of(shared).norm_in_gemv);
  // Weights stored [K, N]: no GEMV (the tiled form normalizes the row).
  Graph plain;
  Tensor z = plain.input("z", {1, 96});
  plain.set_outputs({plain.matmul(plain.rms_norm(z, plain.parameter("gain", {96})), plain.parameter("w", {96, 70}))});
  EXPECT_FALSE(plan_of(plain).norm_in_gemv);
  EXPECT_EQ(plan_of(plain).kernels, 1u);
}

TEST(GemvPrologue, FusedKernelMatchesTheReference) {
  struct Case {
    int64_t batch, k, n;
    bool linear;
    DType storage;
  };
  const Case cases[] = {
      {1, 96, 70, false, DType::f32},  {2, 45, 33, true, DType::f32},   {1, 576, 300, true, DType::f32},
      {1, 70, 40, false, DType::f16},  {2, 96, 50, true, DType::bf16},  {1, 96, 20, false, DType::f16},
      // Rows past 4096 elements are not staged in shared memory: vec4 weights, then single ones.
      {1, 4100, 20, true, DType::f32}, {2, 4101, 9, false, DType::f32},
  };
  for (const Case& c : cases) {
    const Graph graph = normed_row(c.batch, c.k, c.n, c.linear);
    ASSERT_TRUE(plan_of(graph, c.storage).norm_in_gemv);
    const std::string which = "batch " + std::to_string(c.batch) + ", K " + std::to_string(c.k) + ", " +
                              dtype_name(c.storage) + " weights";
    EXPECT_LT(gemv_error(graph, c.storage, static_cast<uint32_t>(c.k + c.n)), 1e-5) << which;
    EXPECT_LT(gemv_error(graph, c.storage, static_cast<uint32_t>(c.k + c.n), false), 1e-5) << which << ", no subgroups";
  }
}

TEST(GemvPrologue, SwigluComputedAsTheDownProjectionLoadsItsRow) {
  const Fused fused = plan_of(swiglu_mlp(1, 96, 64));
  EXPECT_TRUE(fused.pointwise_in_gemv);
  EXPECT_EQ(fused.kernels, 2u);  // gate|up, then SwiGLU + down + residual
  // Several rows: the SwiGLU keeps its own kernel.
  EXPECT_FALSE(plan_of(swiglu_mlp(1, 96, 64)).norm_in_gemv);
  Graph rows;
  Tensor a = rows.input("a", {3, 64});
  Tensor b = rows.input("b", {3, 64});
  rows.set_outputs({rows.matmul(rows.swiglu(a, b), rows.parameter("w", {40, 64}), false, true)});
  EXPECT_FALSE(plan_of(rows).pointwise_in_gemv);
  for (DType storage : {DType::f32, DType::f16}) {
    for (int64_t batch : {1, 2}) {
      const Graph graph = swiglu_mlp(batch, 96, 80);
      EXPECT_LT(gemv_error(graph, storage, static_cast<uint32_t>(7 + batch)), 1e-5)
          << "batch " << batch << ", " << dtype_name(storage) << " weights";
    }
  }
}

}  // namespace
}  // namespace meganeura
