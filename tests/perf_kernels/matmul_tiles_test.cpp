// The tiled matmul paths (8×8 outputs per invocation in 128×128 tiles for large products, 4×4 from
// 64 tiles of 64×64 up — both prefetching — 2×2 below that, 1×1 for small outputs; 16×16 and 8×8
// workgroups) and the GEMV form for one-row products against the CPU reference, with partial tiles, K not a multiple of the shared-memory
// slice, every transpose combination, batches and a fused bias + ReLU epilogue. Each case asserts
// which register tile the compiler chose, so a change of the heuristic cannot silently leave a path
// untested; every faster matmul form joins this file with the same checks.
#include <gtest/gtest.h>

#include <array>
#include <string>

#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

struct Outcome {
  double error = 0;
  std::array<uint32_t, 2> register_tile = {0, 0};
  bool gemv = false;  // the matmul kernel took the one-row form (a 1-D workgroup)
  uint32_t split_k = 0;
};

// Runs the graph's single output (a matmul, possibly with an epilogue) and reports its error
// against the reference and the register tile of the matmul kernel.
Outcome run_matmul(const Graph& graph, bool small_caps, uint32_t seed, int runs = 1) {
  const auto feeds = kernel_tests::random_inputs(graph, seed);
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(graph, feeds, reference_options);
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(graph, options, kernel_tests::test_caps(small_caps), false);
  kernel_tests::apply(session, graph, feeds);
  kernel_tests::poison(session);
  session.run();
  Outcome outcome;
  const std::vector<float> first = session.read_output(0);
  outcome.error = testing_support::relative_error(first, expected[graph.outputs()[0]]);
  // Later runs must repeat the first bit for bit (a split-K kernel's counters start from zero again).
  for (int run = 1; run < runs; ++run) {
    kernel_tests::poison(session);
    session.run();
    if (session.read_output(0) != first) outcome.error = 1;
  }
  for (const auto& kernel : session.impl().plan.kernels) {
    if (kernel.archetype == compile::Archetype::matmul) {
      outcome.register_tile = kernel.register_tile;
      outcome.gemv = kernel.local_size[1] == 1;
      outcome.split_k = kernel.split_k;
    }
  }
  return outcome;
}

Graph batched_matmul(int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  Graph g;
  Tensor a = g.input("a", ta ? Shape{batch, k, m} : Shape{batch, m, k});
  Tensor b = g.input("b", tb ? Shape{batch, n, k} : Shape{batch, k, n});
  g.set_outputs({g.matmul(a, b, ta, tb)});
  return g;
}

TEST(MatmulTiles, FourByFourEveryTransposeWithPartialTiles) {
  // 130×129 leaves partial 64-tiles and K = 69 a partial slice; 8 batches make 72 tiles (4×4 needs 64,
  // and K of 64 or more).
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Outcome outcome = run_matmul(batched_matmul(8, 130, 129, 69, ta, tb), false, 11);
      const std::string which = std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
      EXPECT_EQ(outcome.register_tile[0], 4u) << which;
      EXPECT_LT(outcome.error, 1e-5) << which;
    }
  }
}

TEST(MatmulTiles, WideTilesEveryTransposeWithPartialTilesAndEpilogue) {
  // 64 batches of 130×129 are 256 tiles of 128×128, each with partial edges; K = 21 leaves a
  // partial slice of 8 and exercises both shared-memory stages.
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Outcome outcome = run_matmul(batched_matmul(64, 130, 129, 21, ta, tb), false, 21);
      const std::string which = std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
      EXPECT_EQ(outcome.register_tile[0], 8u) << which;
      EXPECT_LT(outcome.error, 1e-5) << which;
    }
  }
  Graph g;
  Tensor a = g.input("a", {64, 130, 21});
  Tensor b = g.input("b", {129, 21});
  Tensor bias = g.input("bias", {129});
  g.set_outputs({g.relu(g.matmul(a, b, false, true) + bias)});
  const Outcome outcome = run_matmul(g, false, 22);
  EXPECT_EQ(outcome.register_tile[0], 8u);
  EXPECT_LT(outcome.error, 1e-5);
}

TEST(MatmulTiles, LongSpansFetchTwoSlicesAhead) {
  // 144 tiles of 64×64 are not split, so each workgroup sums all K = 523 terms (at least 512: two
  // register sets fetch two slices ahead; 523 leaves a partial slice of 8).
  for (bool ta : {false, true}) {
    const Outcome outcome = run_matmul(batched_matmul(16, 130, 129, 523, ta, !ta), false, 23);
    EXPECT_EQ(outcome.register_tile[0], 4u) << "ta=" << ta;
    EXPECT_EQ(outcome.split_k, 1u) << "ta=" << ta;
    EXPECT_LT(outcome.error, 1e-5) << "ta=" << ta;
  }
}

TEST(MatmulTiles, ShortKTakesTwoByTwoTiles) {
  // 256×1024 outputs over K = 10 (a classifier's gradient back through its classes): 64 tiles of
  // 64×64 would be enough for 4×4, but a K this short gains from 4× the workgroups.
  for (bool tb : {false, true}) {
    const Outcome outcome = run_matmul(batched_matmul(1, 256, 1024, 10, false, tb), false, 15);
    EXPECT_EQ(outcome.register_tile[0], 2u) << "tb=" << tb;
    EXPECT_EQ(outcome.split_k, 1u) << "tb=" << tb;
    EXPECT_LT(outcome.error, 1e-5) << "tb=" << tb;
  }
}

TEST(MatmulTiles, ScalarPathForSmallOutputs) {
  const Outcome outcome = run_matmul(batched_matmul(3, 5, 40, 20, true, false), false, 13);
  EXPECT_EQ(outcome.register_tile[0], 1u);
  EXPECT_LT(outcome.error, 1e-5);
}

TEST(MatmulTiles, SmallWorkgroups) {
  // 64-invocation workgroups (8×8): a tile of 32 at 4×4 outputs per invocation.
  const Outcome outcome = run_matmul(batched_matmul(2, 129, 70, 21, false, true), true, 14);
  EXPECT_EQ(outcome.register_tile[0], 4u);
  EXPECT_LT(outcome.error, 1e-5);
}

TEST(MatmulTiles, LinearWithBiasAndReluEpilogue) {
  Graph g;
  Tensor x = g.input("x", {197, 48});
  Tensor w = g.input("w", {130, 48});
  Tensor bias = g.input("bias", {130});
  g.set_outputs({g.relu(g.linear(x, w, bias))});
  const Outcome outcome = run_matmul(g, false, 15);
  EXPECT_EQ(outcome.register_tile[0], 2u);  // 12 tiles of 64: 2×2 outputs per invocation, 48 tiles
  EXPECT_LT(outcome.error, 1e-5);
}

TEST(MatmulSplitK, FewTilesWithLongKEveryTransposeAndForm) {
  // 2 batches of 250×500 are 64 tiles of 64×64 (the prefetching 4×4 form): K = 500 splits in 7
  // runs of 80 terms, the last partial. Each case runs three times and must repeat itself exactly.
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Outcome outcome = run_matmul(batched_matmul(2, 250, 500, 500, ta, tb), false, 31, 3);
      const std::string which = std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
      EXPECT_EQ(outcome.register_tile[0], 4u) << which;
      EXPECT_EQ(outcome.split_k, 7u) << which;
      EXPECT_LT(outcome.error, 1e-5) << which;
    }
  }
  // 12 tiles of 64×64 keep the 4×4 form, K = 300 split 4 ways, with a bias + ReLU epilogue applied
  // once, after the splits are added.
  Graph g;
  Tensor x = g.input("x", {200, 300});
  Tensor w = g.input("w", {130, 300});
  Tensor bias = g.input("bias", {130});
  g.set_outputs({g.relu(g.linear(x, w, bias))});
  const Outcome linear = run_matmul(g, false, 32, 3);
  EXPECT_EQ(linear.register_tile[0], 4u);
  EXPECT_EQ(linear.split_k, 4u);
  EXPECT_LT(linear.error, 1e-5);
  // With K = 100 (too short to split) the same 12 tiles become 35 of 32×32 instead.
  const Outcome short_k = run_matmul(batched_matmul(1, 200, 130, 100, false, true), false, 37);
  EXPECT_EQ(short_k.register_tile[0], 2u);
  EXPECT_EQ(short_k.split_k, 1u);
  EXPECT_LT(short_k.error, 1e-5);
  // One output per invocation: a classifier's 10 columns over K = 1000 (2 tiles: 13 splits of 80
  // terms, at least 64 each) and the small-device workgroups (8×8).
  const Outcome narrow = run_matmul(batched_matmul(1, 32, 10, 1000, false, true), false, 33, 3);
  EXPECT_EQ(narrow.register_tile[0], 1u);
  EXPECT_EQ(narrow.split_k, 13u);
  EXPECT_LT(narrow.error, 1e-5);
  const Outcome small = run_matmul(batched_matmul(1, 40, 24, 700, true, false), true, 34, 3);
  EXPECT_GT(small.split_k, 1u);
  EXPECT_LT(small.error, 1e-5);
}

TEST(MatmulSplitK, ShortSumsAndManyTilesAreNotSplit) {
  EXPECT_EQ(run_matmul(batched_matmul(1, 32, 10, 100, false, true), false, 35).split_k, 1u);  // K < 128
  EXPECT_EQ(run_matmul(batched_matmul(2, 1, 50, 900, false, true), false, 36).split_k, 1u);   // GEMV
}

TEST(MatmulGemv, OneRowTimesTransposedWeightsWithBiasAndRelu) {
  // SmolLM2-135M's MLP up projection for one token, with a fused bias + ReLU.
  Graph g;
  Tensor x = g.input("x", {1, 576});
  Tensor w = g.input("w", {1536, 576});
  Tensor bias = g.input("bias", {1536});
  g.set_outputs({g.relu(g.linear(x, w, bias))});
  const Outcome outcome = run_matmul(g, false, 16);
  EXPECT_TRUE(outcome.gemv);
  EXPECT_LT(outcome.error, 1e-5);
}

TEST(MatmulGemv, BatchedTransposedRowAndPartialWorkgroups) {
  // K = 37 leaves lanes without work; N = 50 a partial last workgroup; A given transposed.
  for (bool ta : {false, true}) {
    const Outcome outcome = run_matmul(batched_matmul(3, 1, 50, 37, ta, true), false, 17);
    EXPECT_TRUE(outcome.gemv) << "ta=" << ta;
    EXPECT_LT(outcome.error, 1e-5) << "ta=" << ta;
  }
}

TEST(MatmulGemv, BatchedTokensAgainstSharedWeightsWithResidual) {
  // A decode step's shape: activations [batch, 1, K] against one weight matrix [N, K], plus a
  // residual (the matmul+add kernels of o_proj and down_proj).
  Graph g;
  Tensor x = g.input("x", {2, 1, 96});
  Tensor w = g.input("w", {70, 96});
  Tensor residual = g.input("residual", {2, 1, 70});
  g.set_outputs({g.matmul(x, w, false, true) + residual});
  const Outcome outcome = run_matmul(g, false, 20);
  EXPECT_TRUE(outcome.gemv);
  EXPECT_LT(outcome.error, 1e-5);
}

TEST(MatmulGemv, SubgroupSumsAndSharedMemorySumsBothMatch) {
  // A column's lanes add up with subgroupAdd where the device has subgroup arithmetic with one fixed
  // subgroup size (lavapipe: 8 lanes a column), else through shared memory (32 lanes).
  Graph g;
  Tensor x = g.input("x", {2, 1, 300});
  Tensor w = g.input("w", {70, 300});
  Tensor gain = g.input("gain", {300});
  g.set_outputs({g.relu(g.matmul(g.rms_norm(x, gain), w, false, true))});
  const auto feeds = kernel_tests::random_inputs(g, 40);
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(g, feeds, reference_options);
  for (bool subgroups : {true, false}) {
    compile::DeviceCaps caps = kernel_tests::test_caps(false);
    if (!subgroups) caps.supports_subgroup_arithmetic = false;
    SessionOptions options;
    options.optimize = false;
    Session session = runtime::build_session_for_caps(g, options, caps, false);
    const compile::Kernel* gemv = nullptr;
    for (const auto& kernel : session.impl().plan.kernels) {
      if (kernel.archetype == compile::Archetype::matmul) gemv = &kernel;
    }
    ASSERT_NE(gemv, nullptr);
    ASSERT_EQ(gemv->local_size[1], 1u);
    const bool expect_subgroup = subgroups && caps.supports_subgroup_arithmetic &&
                                 caps.min_subgroup_size == caps.max_subgroup_size && caps.subgroup_size <= 32;
    EXPECT_EQ(gemv->register_tile[1], expect_subgroup ? 1u : 0u) << "subgroups " << subgroups;
    EXPECT_EQ(gemv->register_tile[0], expect_subgroup ? caps.subgroup_size : 32u);
    kernel_tests::apply(session, g, feeds);
    kernel_tests::poison(session);
    session.run();
    EXPECT_LT(testing_support::relative_error(session.read_output(0), expected[g.outputs()[0]]), 1e-5)
        << "subgroups " << subgroups;
  }
}

TEST(MatmulGemv, SmallWorkgroupsAndUntransposedWeightsKeepTheirForms) {
  const Outcome small = run_matmul(batched_matmul(2, 1, 45, 70, false, true), true, 18);
  EXPECT_TRUE(small.gemv);  // 64 invocations: two columns per workgroup
  EXPECT_LT(small.error, 1e-5);
  const Outcome untransposed = run_matmul(batched_matmul(2, 1, 45, 70, false, false), false, 19);
  EXPECT_FALSE(untransposed.gemv);  // B stored [K, N]: column reads would stride, so the tiled form
  EXPECT_LT(untransposed.error, 1e-5);
}

}  // namespace
}  // namespace meganeura
