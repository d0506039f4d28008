// Fused attention kernels (forward, row log-sum-exp, dQ, dK, dV) against the CPU reference: causal and full,
// grouped-query heads, additive masks, KV caches read at a position offset, one-query decoding, and
// head dims and sequence lengths that cross the tiles.
#include <cmath>
#include <limits>

#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

struct AttentionCase {
  std::string name;
  int64_t B, Hq, Hkv, S, Skv, D;
  bool causal = false;
  bool mask = false;
  int offset = -1;  // >= 0: read a KV cache at this position offset
};

std::vector<AttentionCase> attention_cases() {
  return {
      {"full_d16_s7", 1, 2, 2, 7, 7, 16},
      {"causal_gqa_d32_s7", 2, 4, 2, 7, 7, 32, true},
      {"two_key_tiles_full_d16_s65", 1, 1, 1, 65, 65, 16},
      {"two_key_tiles_causal_d16_s65", 1, 1, 1, 65, 65, 16, true},
      {"causal_d64_s128", 1, 1, 1, 128, 128, 64, true},
      {"causal_gqa_d16_s128", 1, 3, 1, 128, 128, 16, true},
      {"causal_gqa_d64_s128", 1, 3, 1, 128, 128, 64, true},
      {"causal_gqa_d128_s128", 1, 2, 1, 128, 128, 128, true},
      {"causal_prefix_d32_s7_of_20", 1, 2, 1, 7, 20, 32, true},
      {"masked_cross_d128_s7_of_9", 1, 2, 2, 7, 9, 128, false, true},
      {"masked_causal_d16_s33", 1, 2, 1, 33, 33, 16, true, true},
      {"decode_cache_d80", 1, 3, 1, 1, 40, 80, true, false, 36},
      {"decode_cache_gqa_d64", 1, 9, 3, 1, 24, 64, true, false, 20},
      {"full_gqa_d80_s7", 1, 4, 2, 7, 7, 80},
      {"decode_cache_d128_full", 2, 2, 1, 1, 70, 128, false, false, 65},
      {"prefill_cache_gqa_d32", 1, 4, 2, 5, 16, 32, true, false, 3},
  };
}

// Outputs: attention, its row log-sum-exp, then dQ, dK, dV of it for an upstream gradient `dout`.
Graph attention_graph(const AttentionCase& c) {
  Graph g;
  Tensor q = g.input("q", {c.B, c.Hq, c.S, c.D});
  Tensor k = g.input("k", {c.B, c.Hkv, c.Skv, c.D});
  Tensor v = g.input("v", {c.B, c.Hkv, c.Skv, c.D});
  Tensor dout = g.input("dout", {c.B, c.Hq, c.S, c.D});
  std::optional<Tensor> mask, offset;
  if (c.mask) mask = g.input("mask", {c.S, c.Skv}) * 3.0;
  if (c.offset >= 0) offset = g.input("offset", {1}, DType::i32);
  AttentionOptions options{.causal = c.causal};
  Tensor out = g.attention(q, k, v, options, mask, offset);
  Tensor lse = g.attention_lse(q, k, options, mask, offset);
  g.set_outputs({out, lse, g.attention_grad_q(q, k, v, out, dout, lse, options, mask, offset),
                 g.attention_grad_k(q, k, v, out, dout, lse, options, mask, offset),
                 g.attention_grad_v(q, k, v, out, dout, lse, options, mask, offset)});
  return g;
}

class AttentionKernelTest : public ::testing::TestWithParam<std::tuple<AttentionCase, bool>> {};

TEST_P(AttentionKernelTest, ForwardAndGradientsMatchReference) {
  const auto& [c, small] = GetParam();
  const Graph g = attention_graph(c);
  const auto feeds = kernel_tests::random_inputs(g, 7, {{"offset", c.offset}});
  std::string summary;
  const auto errors = kernel_tests::output_errors(g, feeds, small, &summary);
  kernel_tests::expect_attention_errors(errors, c.name, summary, 2e-6, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(Attention, AttentionKernelTest,
                         ::testing::Combine(::testing::ValuesIn(attention_cases()), ::testing::Bool()),
                         kernel_tests::case_and_caps_name<AttentionCase>);

TEST(AttentionKernel, FewWorkgroupsTakeShorterQueryBlocks) {
  // One causal sequence of 128 over 3 heads is 12 blocks of 32 rows (4 lanes a row, 64-key tiles);
  // a device of 40 compute units gets 48 blocks of 8 rows, each row's keys over 16 lanes in tiles
  // of 32 keys, with the same results.
  const AttentionCase c{"causal_gqa_d64_s128", 1, 3, 1, 128, 128, 64, true};
  const Graph g = attention_graph(c);
  const auto feeds = kernel_tests::random_inputs(g, 9);
  const auto expected = reference::run(g, feeds);
  for (uint32_t units : {0u, 40u}) {
    compile::DeviceCaps caps = kernel_tests::test_caps(false);
    caps.compute_units = units;
    SessionOptions options;
    options.optimize = false;
    Session session = runtime::build_session_for_caps(g, options, caps, false);
    uint32_t rows = 0, lanes = 0;
    for (const auto& kernel : session.impl().plan.kernels) {
      if (kernel.archetype == compile::Archetype::attention && g.node(kernel.anchor).op == Op::attention) {
        rows = kernel.register_tile[1];
        lanes = kernel.local_size[0];
      }
    }
    EXPECT_EQ(rows, units == 0 ? 32u : 8u);
    EXPECT_EQ(lanes, units == 0 ? 4u : 16u);
    // Key tiles on a device with the shared memory for 64 (lavapipe's fits 32 either way).
    compile::DeviceCaps gpu = compile::DeviceCaps::default_for_tests();
    gpu.compute_units = units;
    uint32_t keys = 0;
    for (const auto& kernel : compile::compile(g, gpu).kernels) {
      if (kernel.archetype == compile::Archetype::attention && g.node(kernel.anchor).op == Op::attention) {
        keys = kernel.register_tile[0];
      }
    }
    EXPECT_EQ(keys, units == 0 ? 64u : 32u);
    kernel_tests::apply(session, g, feeds);
    kernel_tests::poison(session);
    session.run();
    std::vector<double> errors;
    for (size_t k = 0; k < g.outputs().size(); ++k) {
      errors.push_back(testing_support::relative_error(session.read_output(k), expected.at(g.outputs()[k])));
    }
    kernel_tests::expect_attention_errors(errors, c.name + " units " + std::to_string(units), session.plan_summary(),
                                          2e-6, 2e-5);
  }
}

TEST(AttentionKernel, MaskedOutRowGivesZerosAndZeroGradients) {
  // Every key of query row 0 masked with -inf: the row's output and gradients are zeros, not NaN.
  Graph g;
  Tensor q = g.input("q", {1, 1, 3, 16});
  Tensor k = g.input("k", {1, 1, 4, 16});
  Tensor v = g.input("v", {1, 1, 4, 16});
  Tensor dout = g.input("dout", {1, 1, 3, 16});
  std::vector<float> mask(12, 0.0f);
  for (int j = 0; j < 4; ++j) mask[static_cast<size_t>(j)] = -std::numeric_limits<float>::infinity();
  Tensor m = g.constant(mask, {3, 4});
  Tensor out = g.attention(q, k, v, {}, m);
  Tensor lse = g.attention_lse(q, k, {}, m);
  g.set_outputs({out, g.attention_grad_q(q, k, v, out, dout, lse, {}, m), g.attention_grad_k(q, k, v, out, dout, lse, {}, m),
                 g.attention_grad_v(q, k, v, out, dout, lse, {}, m), lse});
  const auto feeds = kernel_tests::random_inputs(g, 3);
  const auto errors = kernel_tests::output_errors(g, feeds, false);
  ASSERT_EQ(errors.size(), 5u);
  for (size_t k = 0; k < 4; ++k) EXPECT_LE(errors[k], 2e-5) << k;
  // The log-sum-exp of the row that sees no key is +inf (its probabilities exp(s − lse) are 0);
  // the other rows match the reference.
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(g, options, kernel_tests::test_caps(false), false);
  kernel_tests::apply(session, g, feeds);
  kernel_tests::poison(session);
  session.run();
  const std::vector<float> got = session.read_output(4);
  const auto expected = reference::run(g, feeds)[g.outputs()[4]];
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(std::isinf(got[0]) && got[0] > 0) << got[0];
  EXPECT_TRUE(std::isinf(expected[0]) && expected[0] > 0) << expected[0];
  for (size_t i = 1; i < 3; ++i) EXPECT_NEAR(got[i], expected[i], 1e-5 * std::fabs(expected[i]) + 1e-6) << i;
}

TEST(AttentionKernel, TrainingGradientsThroughAutodiff) {
  // q, k, v as parameters: differentiate() emits the attention gradient ops, the Session runs them.
  Graph g;
  Tensor q = g.parameter("q", {1, 4, 9, 32}, Init::uniform(-1, 1));
  Tensor k = g.parameter("k", {1, 2, 9, 32}, Init::uniform(-1, 1));
  Tensor v = g.parameter("v", {1, 2, 9, 32}, Init::uniform(-1, 1));
  Tensor w = g.input("w", {1, 4, 9, 32});
  g.set_outputs({g.sum_all(g.attention(q, k, v, {.causal = true}) * w)});
  const Session session = kernel_tests::expect_training_gradients(g, kernel_tests::random_inputs(g, 5), 4, 2e-5);
  // The forward kernel keeps the row log-sum-exp the three gradient kernels read: no kernel of its own.
  size_t forward_with_lse = 0, lse_alone = 0;
  for (const compile::Kernel& kernel : session.impl().plan.kernels) {
    const Op op = session.impl().plan.graph.node(kernel.root).op;
    if (op == Op::attention && kernel.extra_outputs.size() == 1) ++forward_with_lse;
    if (op == Op::attention_lse) ++lse_alone;
  }
  EXPECT_EQ(forward_with_lse, 1u) << session.plan_summary();
  EXPECT_EQ(lse_alone, 0u) << session.plan_summary();
}

}  // namespace
}  // namespace meganeura
