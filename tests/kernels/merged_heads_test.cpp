// An attention read only by the permute that merges its heads back ([B, H, S, D] -> [B, S, H, D])
// stores its rows in that order itself (compile/grouping.h: merges_heads): one kernel instead of
// two, against the CPU reference, with GQA, a causal mask, partial query tiles and a RoPE'd q.
#include <algorithm>

#include "compile/plan.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

Graph merged_attention(int64_t S, int64_t D, bool rope, bool also_read) {
  Graph g;
  const int64_t B = 2, Hq = 4, Hkv = 2;
  Tensor q = g.input("q", {B, Hq, S, D});
  if (rope) q = g.rope(q, g.scalar(0.0, DType::i32));
  Tensor out = g.attention(q, g.input("k", {B, Hkv, S, D}), g.input("v", {B, Hkv, S, D}), {.causal = true});
  Tensor merged = g.reshape(g.permute(out, {0, 2, 1, 3}), {B * S, Hq * D});
  Tensor projected = g.matmul(merged, g.input("w", {8, Hq * D}), false, true);
  g.set_outputs(also_read ? std::vector<Tensor>{projected, out * 2.0} : std::vector<Tensor>{projected});
  return g;
}

const compile::Kernel* attention_kernel(const compile::Plan& plan) {
  const auto it = std::find_if(plan.kernels.begin(), plan.kernels.end(),
                               [](const compile::Kernel& k) { return k.archetype == compile::Archetype::attention; });
  return it == plan.kernels.end() ? nullptr : &*it;
}

TEST(MergedHeads, AttentionStoresThroughThePermute) {
  for (int64_t S : {5, 40}) {
    for (bool rope : {false, true}) {
      const Graph g = merged_attention(S, 16, rope, false);
      const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
      const compile::Kernel* kernel = attention_kernel(plan);
      ASSERT_NE(kernel, nullptr) << plan.summary();
      EXPECT_EQ(g.node(kernel->root).op, Op::permute) << plan.summary();
      EXPECT_EQ(g.node(kernel->anchor).op, Op::attention);
      EXPECT_EQ(plan.kernels.size(), 2u) << plan.summary();  // the attention, the projection
      for (bool small : {false, true}) {
        const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 41), small);
        ASSERT_EQ(errors.size(), 1u);
        EXPECT_LE(errors[0], 1e-5) << "S " << S << (rope ? ", rope" : "") << (small ? ", small caps" : "");
      }
    }
  }
}

TEST(MergedHeads, AnAttentionReadElsewhereKeepsThePermuteKernel) {
  const Graph g = merged_attention(5, 16, false, true);
  const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
  const compile::Kernel* kernel = attention_kernel(plan);
  ASSERT_NE(kernel, nullptr);
  EXPECT_EQ(kernel->root, kernel->anchor) << plan.summary();
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 42), false);
  for (double error : errors) EXPECT_LE(error, 1e-5);
}

}  // namespace
}  // namespace meganeura
