// An attention_lse over the same operands and options as an attention is stored by the attention's
// kernel as a second output (compile/grouping.h), without a GPU: when it applies, the bindings and
// storage it gets, and the near misses that keep their own kernel.
#include <gtest/gtest.h>

#include "compile/plan.h"

namespace meganeura::compile {
namespace {

struct Operands {
  Graph g;
  Tensor q, k, v;
  Operands() : q(g.input("q", {1, 4, 8, 16})), k(g.input("k", {1, 2, 8, 16})), v(g.input("v", {1, 2, 8, 16})) {}
};

TEST(RowStatistics, AttentionKernelStoresTheMatchingLse) {
  Operands o;
  Tensor out = o.g.attention(o.q, o.k, o.v, {.causal = true});
  Tensor lse = o.g.attention_lse(o.q, o.k, {.causal = true});
  o.g.set_outputs({out * 2.0, lse * 3.0});  // both values read by later kernels
  const Plan plan = compile(o.g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 3u) << plan.summary();
  const Kernel& kernel = plan.kernels[0];
  EXPECT_EQ(kernel.label, "attention+attention_lse");
  EXPECT_EQ(kernel.root, out.id);
  ASSERT_EQ(kernel.extra_outputs, std::vector<int32_t>{lse.id});
  // q, k, v, then the output, then the lse.
  ASSERT_EQ(kernel.bindings.size(), 5u);
  EXPECT_EQ(kernel.bindings[4].buffer, plan.storage[lse.id].buffer);
  EXPECT_EQ(kernel.bindings[4].offset, plan.storage[lse.id].offset);
  EXPECT_EQ(plan.storage[lse.id].bytes, 1u * 4 * 8 * 4);
  // The two values live at the same time, so they must not overlap in the arena.
  const Storage& a = plan.storage[out.id];
  const Storage& b = plan.storage[lse.id];
  EXPECT_TRUE(a.buffer != b.buffer || a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset);

  CompileOptions unfused;
  unfused.fuse = false;
  EXPECT_EQ(compile(o.g, DeviceCaps::lavapipe_like(), unfused).kernels.size(), 4u);
}

TEST(RowStatistics, DifferentOptionsOrOperandsKeepTheirKernel) {
  Operands o;
  Tensor other_k = o.g.input("other_k", {1, 2, 8, 16});
  o.g.set_outputs({o.g.attention(o.q, o.k, o.v, {.causal = true}),
                   o.g.attention_lse(o.q, o.k, {.causal = false}),  // other mask
                   o.g.attention_lse(o.q, other_k, {.causal = true})});  // other keys
  const Plan plan = compile(o.g, DeviceCaps::lavapipe_like());
  EXPECT_EQ(plan.kernels.size(), 3u) << plan.summary();
  for (const Kernel& kernel : plan.kernels) EXPECT_TRUE(kernel.extra_outputs.empty()) << kernel.label;
}

}  // namespace
}  // namespace meganeura::compile
