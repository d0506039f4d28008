// compile(): grouping, aliases, barriers and memory, without a GPU.
#include <gtest/gtest.h>

#include "compile/plan.h"
#include "compile/schedule.h"
#include "meganeura/error.h"

namespace meganeura::compile {
namespace {

TEST(Compile, MatmulBiasActivationResidualIsOneKernel) {
  Graph g;
  auto x = g.input("x", {8, 16});
  auto w = g.parameter("fc.weight", {16, 16});
  auto b = g.parameter("fc.bias", {16});
  auto y = g.relu(g.matmul(x, w, false, true) + b) + x;
  g.set_name(y, "block.out");
  g.set_outputs({y});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 1u) << plan.summary();
  const Kernel& k = plan.kernels[0];
  EXPECT_EQ(k.archetype, Archetype::matmul);
  EXPECT_EQ(k.label, "matmul+add+relu+add (block.out)");
  EXPECT_EQ(k.inputs.size(), 3u);  // x (read twice), weight, bias
  EXPECT_FALSE(k.barrier_before);
}

TEST(Compile, UnfusedPlanHasOneKernelPerNode) {
  Graph g;
  auto x = g.input("x", {8, 16});
  auto w = g.parameter("w", {16, 16});
  g.set_outputs({g.relu(g.matmul(x, w) + 1.0)});
  CompileOptions options;
  options.fuse = false;
  EXPECT_EQ(compile(g, DeviceCaps::lavapipe_like(), options).kernels.size(), 3u);
}

TEST(Compile, ReshapeIsAnAliasAndReductionsTakePrologues) {
  Graph g;
  auto x = g.input("x", {4, 6});
  auto r = g.reshape(g.exp(x), {6, 4});
  g.set_outputs({g.sum(r * r, 1)});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 2u) << plan.summary();  // exp (escapes through the reshape), sum(r*r)
  EXPECT_EQ(plan.kernels[1].archetype, Archetype::reduction);
  EXPECT_EQ(plan.storage[r.id].buffer, plan.storage[plan.kernels[0].root].buffer);
  EXPECT_EQ(plan.storage[r.id].offset, plan.storage[plan.kernels[0].root].offset);
  EXPECT_TRUE(plan.kernels[1].barrier_before);
}

TEST(Compile, IndependentBranchesNeedNoBarrier) {
  Graph g;
  auto x = g.input("x", {64});
  auto a = g.sum_all(g.exp(x));
  auto b = g.max(g.reshape(x, {8, 8}), 1);
  g.set_outputs({a, b});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 2u);
  EXPECT_EQ(plan.barrier_count(), 0u);
}

TEST(Compile, LongChainsShareArenaSpace) {
  Graph g;
  Tensor h = g.input("x", {64, 256});
  auto w = g.parameter("w", {256, 256});
  for (int i = 0; i < 12; ++i) h = g.softmax(g.matmul(h, w));
  g.set_outputs({h});
  const Plan plan = compile(g, DeviceCaps::default_for_tests());
  EXPECT_EQ(plan.kernels.size(), 24u);
  // Two live activations at a time, plus the partial sums of the product running (split-K: 16
  // tiles of 32×32 for K = 256).
  uint64_t partials = 0;
  for (const Kernel& kernel : plan.kernels) {
    if (kernel.split_k > 1) partials = std::max(partials, kernel.bindings[kernel.inputs.size() + 1].bytes);
  }
  EXPECT_EQ(partials, 4 * 64 * 256 * 4u);
  EXPECT_LE(plan.arena_bytes, 2 * 64 * 256 * 4u + partials);
  EXPECT_GE(plan.unshared_bytes, 22 * 64 * 256 * 4u);
}

TEST(Compile, PermutesThatKeepTheOrderAreAliases) {
  // One token's heads: [1, 1, 9, 64] -> [1, 9, 1, 64] moves nothing; [1, 2, 9, 64] -> [1, 9, 2, 64] does.
  Graph g;
  Tensor one = g.input("one", {1, 1, 9, 64});
  Tensor two = g.input("two", {1, 2, 9, 64});
  Tensor split = g.permute(one, {0, 2, 1, 3});
  Tensor moved = g.permute(two, {0, 2, 1, 3});
  g.set_outputs({g.exp(split), g.exp(moved)});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  int permutes = 0;
  for (const Kernel& kernel : plan.kernels) {
    for (int32_t id : kernel.nodes) permutes += plan.graph.node(id).op == Op::permute;
  }
  EXPECT_EQ(permutes, 1);
  EXPECT_EQ(plan.storage[split.id].buffer, plan.storage[one.id].buffer);
  EXPECT_EQ(plan.storage[split.id].offset, plan.storage[one.id].offset);
  EXPECT_NE(plan.storage[moved.id].buffer, plan.storage[two.id].buffer);
}

TEST(Compile, SplitKMatmulsBindPartialSumsAndArrivalCounters) {
  // An MLP layer of 256 rows: 64 tiles of 64×64 over K = 784 split in 8 runs of 104 terms (about
  // 512 workgroups, 64 terms or more each, whole slices of 8).
  Graph g;
  Tensor x = g.input("x", {256, 784});
  Tensor w = g.parameter("w", {1024, 784});
  Tensor b = g.parameter("b", {1024});
  Tensor wide = g.relu(g.linear(x, w, b));
  Tensor v = g.parameter("v", {1024, 1024});
  g.set_outputs({g.matmul(wide, v, false, true), g.matmul(x, w, false, true)});  // the second: 64 tiles again
  const Plan plan = compile(g, DeviceCaps::default_for_tests());
  std::vector<const Kernel*> split;
  for (const Kernel& kernel : plan.kernels) {
    if (kernel.split_k > 1) split.push_back(&kernel);
  }
  ASSERT_EQ(split.size(), 3u);
  const Kernel& first = *split[0];
  EXPECT_EQ(first.split_k, 8u);
  EXPECT_EQ(split_k_granularity(first), 8u);
  EXPECT_EQ(split_k_span(784, 8, 8), 104u);
  EXPECT_EQ(split_k_span(784, 8, 16), 112u);  // the 16-step tiles: 7 runs would do
  EXPECT_EQ(first.workgroups, (std::array<uint32_t, 3>{16, 4, 8}));
  ASSERT_EQ(first.bindings.size(), first.inputs.size() + 3);
  const Storage& partials = first.bindings[first.inputs.size() + 1];
  const Storage& arrivals = first.bindings[first.inputs.size() + 2];
  EXPECT_EQ(partials.buffer, plan.arena_buffer);
  EXPECT_EQ(partials.bytes, 8u * 256 * 1024 * 4);
  EXPECT_EQ(plan.buffers[arrivals.buffer].kind, BufferKind::workspace);
  EXPECT_EQ(arrivals.bytes, 64u * 4);  // one counter per output tile
  // Each kernel counts in its own range: kernels of one stage run at the same time.
  for (size_t i = 0; i < split.size(); ++i) {
    for (size_t j = i + 1; j < split.size(); ++j) {
      const Storage& a = split[i]->bindings.back();
      const Storage& c = split[j]->bindings.back();
      EXPECT_TRUE(a.offset + a.bytes <= c.offset || c.offset + c.bytes <= a.offset);
    }
  }
  // 256 tiles of 64×64 (a weight gradient's 1024×1024) fill the GPU without splitting.
  Graph square;
  Tensor p = square.input("p", {1024, 256});
  Tensor q = square.input("q", {256, 1024});
  square.set_outputs({square.matmul(p, q)});
  const Plan unsplit = compile(square, DeviceCaps::default_for_tests());
  ASSERT_EQ(unsplit.kernels.size(), 1u);
  EXPECT_EQ(unsplit.kernels[0].split_k, 1u);
  EXPECT_EQ(unsplit.kernels[0].bindings.size(), 3u);
}

TEST(Compile, SplitKProductsOfOneInputShareAStage) {
  // A prefill layer's q, k and v products: few tiles each, so all three split K. Their partial sums
  // live as long as the stage, not the kernel, or the second would reuse the first's and wait for it.
  Graph g;
  Tensor x = g.input("x", {128, 576});
  Tensor q = g.matmul(x, g.parameter("q", {576, 576}), false, true);
  Tensor k = g.matmul(x, g.parameter("k", {192, 576}), false, true);
  Tensor v = g.matmul(x, g.parameter("v", {192, 576}), false, true);
  g.set_outputs({q, k, v});
  const Plan plan = compile(g, DeviceCaps::default_for_tests());
  std::vector<const Kernel*> split;
  for (const Kernel& kernel : plan.kernels) {
    if (kernel.split_k > 1) split.push_back(&kernel);
  }
  ASSERT_EQ(split.size(), 3u) << plan.summary();
  EXPECT_FALSE(split[1]->barrier_before) << plan.summary();
  EXPECT_FALSE(split[2]->barrier_before) << plan.summary();
  for (size_t i = 0; i < split.size(); ++i) {
    for (size_t j = i + 1; j < split.size(); ++j) {
      const Storage& a = split[i]->bindings[split[i]->inputs.size() + 1];
      const Storage& c = split[j]->bindings[split[j]->inputs.size() + 1];
      EXPECT_TRUE(a.offset + a.bytes <= c.offset || c.offset + c.bytes <= a.offset);
    }
  }
}

TEST(Compile, ShortSplitsSpreadWholeWaves) {
  // 128 rows × 576 over K = 576: 18 tiles of 64×64. K allows 9 splits of 64 terms (162 workgroups:
  // 30 of 132 units run two, 128 terms); 7 splits of 88 fill one wave of 126 instead. Where the
  // device does not report its units the split stays 9; and a product that reaches its 512
  // workgroups (256 × 1024 over K = 784) keeps its 8 splits either way.
  EXPECT_EQ(balanced_split_k(18, 576, 9, 132, 8), 7u);
  EXPECT_EQ(balanced_split_k(48, 576, 9, 132, 8), 8u);    // 384 workgroups: 3 waves of 72 terms
  EXPECT_EQ(balanced_split_k(18, 1536, 24, 132, 8), 22u);  // 396: 3 waves of 72
  EXPECT_EQ(balanced_split_k(5, 100, 1, 132, 8), 1u);
  auto split_of = [](int64_t m, int64_t n, int64_t k, uint32_t units) {
    Graph g;
    g.set_outputs({g.matmul(g.input("x", {m, k}), g.parameter("w", {n, k}), false, true)});
    DeviceCaps caps = DeviceCaps::default_for_tests();
    caps.compute_units = units;
    const Plan plan = compile(g, caps);
    return plan.kernels.at(0).split_k;
  };
  EXPECT_EQ(split_of(128, 576, 576, 0), 9u);
  EXPECT_EQ(split_of(128, 576, 576, 132), 7u);
  EXPECT_EQ(split_of(256, 1024, 784, 0), 8u);
  EXPECT_EQ(split_of(256, 1024, 784, 132), 8u);
  EXPECT_EQ(split_of(32, 128, 784, 132), split_of(32, 128, 784, 0));  // 16×16 tiles: many share a unit
}

TEST(Compile, IndependentRunsEndAtTheFirstDependence) {
  // Kernels 0-2 are independent; 3 reads 1's value; 4 overwrites what 3 reads; 5 is independent again.
  const std::vector<std::vector<int32_t>> reads = {{10}, {10}, {11}, {21}, {}, {12}};
  const std::vector<std::vector<int32_t>> writes = {{20}, {21}, {22}, {23}, {21}, {24}};
  const std::vector<IndependentRun> runs = independent_runs(reads, writes);
  ASSERT_EQ(runs.size(), 6u);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(runs[k].first, 0) << k;
  EXPECT_EQ(runs[2].last, 2);
  EXPECT_EQ(runs[3].first, 3);
  EXPECT_EQ(runs[3].last, 3);
  EXPECT_EQ(runs[4].first, 4);
  EXPECT_EQ(runs[5].first, 4);
  EXPECT_EQ(runs[5].last, 5);
}

TEST(Compile, CapsShapeTheDispatch) {
  Graph g;
  auto a = g.input("a", {128, 96});
  auto b = g.input("b", {96, 128});
  g.set_outputs({g.matmul(a, b)});
  DeviceCaps small = DeviceCaps::lavapipe_like();
  small.max_workgroup_invocations = 64;
  small.max_shared_memory_bytes = 2048;
  const Plan tiny = compile(g, small);
  EXPECT_EQ(tiny.kernels[0].local_size[0], 8u);
  EXPECT_EQ(tiny.kernels[0].register_tile[0], 2u);  // two 16×(8·2) float tiles = 2 KiB; 4 per side would need 4 KiB
  const Plan big = compile(g, DeviceCaps::default_for_tests());
  EXPECT_EQ(big.kernels[0].local_size[0], 16u);
  // 4 tiles of 64×64 would leave a large GPU idle: 2×2 per invocation, 16 tiles of 32×32.
  EXPECT_EQ(big.kernels[0].register_tile[0], 2u);
  EXPECT_EQ(big.kernels[0].workgroups[0], 4u);
  Graph wide;
  auto x = wide.input("x", {1024, 96});
  wide.set_outputs({wide.matmul(x, wide.input("w", {96, 512}))});
  const Plan many = compile(wide, DeviceCaps::default_for_tests());  // 16 × 8 = 128 tiles of 64×64
  EXPECT_EQ(many.kernels[0].register_tile[0], 4u);
  EXPECT_EQ(many.kernels[0].workgroups[0], 8u);
}

TEST(Compile, OpsWithoutKernelsAreNamed) {
  Graph g;
  auto x = g.input("x", {1, 2, 4, 4});
  auto w = g.parameter("w", {3, 2, 3, 3});
  g.set_outputs({g.conv2d(x, w)});
  try {
    compile(g, DeviceCaps::lavapipe_like());  // succeeds once convolution kernels are in
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meganeura::compile
