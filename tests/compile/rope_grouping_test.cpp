// The grouping rule that fuses a rope into the kernel reading it (compile/grouping.h), without a GPU:
// when it applies, and when the rope keeps its own kernel.
#include <gtest/gtest.h>

#include <algorithm>

#include "compile/plan.h"

namespace meganeura::compile {
namespace {

bool has_kernel(const Plan& plan, const std::string& label) {
  return std::any_of(plan.kernels.begin(), plan.kernels.end(), [&](const Kernel& k) { return k.label == label; });
}

struct Operands {
  Graph g;
  Tensor x, v, offset;
  Operands()
      : x(g.input("x", {1, 2, 8, 16})), v(g.input("v", {1, 2, 8, 16})), offset(g.input("offset", {1}, DType::i32)) {}
};

TEST(RopeGrouping, RopedQueryAndKeyJoinTheAttentionKernel) {
  Operands o;
  Tensor q = o.g.rope(o.x, o.offset), k = o.g.rope(o.v, o.offset);
  o.g.set_outputs({o.g.attention(q, k, o.v, {.causal = true})});
  const Plan plan = compile(o.g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 1u) << plan.summary();
  const Kernel& kernel = plan.kernels[0];
  EXPECT_EQ(kernel.archetype, Archetype::attention);
  EXPECT_EQ(kernel.label, "rope+rope+attention");
  EXPECT_EQ(kernel.anchor, kernel.root);
  EXPECT_EQ(o.g.node(kernel.root).op, Op::attention);
  // Reads the rope inputs (x, v, the offset), never the rotated values.
  EXPECT_EQ(kernel.inputs.size(), 3u);
  EXPECT_EQ(std::count(kernel.inputs.begin(), kernel.inputs.end(), q.id), 0);
  EXPECT_EQ(plan.storage[q.id].bytes, 0u);  // no buffer for what is computed on load
  CompileOptions unfused;
  unfused.fuse = false;
  EXPECT_EQ(compile(o.g, DeviceCaps::lavapipe_like(), unfused).kernels.size(), 3u);
}

TEST(RopeGrouping, RopedUpdateJoinsTheCacheWrite) {
  Graph g;
  Tensor cache = g.input("cache", {1, 2, 12, 16});
  Tensor offset = g.input("offset", {1}, DType::i32);
  Tensor written = g.kv_cache_write(cache, g.rope(g.input("k", {1, 2, 1, 16}), offset), offset);
  g.set_outputs({written});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 1u) << plan.summary();
  EXPECT_EQ(plan.kernels[0].archetype, Archetype::gather);
  EXPECT_EQ(plan.kernels[0].label, "rope+kv_cache_write");
  EXPECT_EQ(g.node(plan.kernels[0].anchor).op, Op::kv_cache_write);
}

TEST(RopeGrouping, RopeWithAnotherReaderKeepsItsKernel) {
  // The rope'd value is also read by the backward (as in training) or by another op.
  Operands o;
  Tensor q = o.g.rope(o.x, o.offset);
  Tensor out = o.g.attention(q, o.v, o.v);
  Tensor lse = o.g.attention_lse(q, o.v);
  o.g.set_outputs({out, lse});
  const Plan plan = compile(o.g, DeviceCaps::lavapipe_like());
  EXPECT_TRUE(has_kernel(plan, "rope")) << plan.summary();
  // The attention kernel (which also stores the lse, compile/grouping.h) reads the stored rope.
  EXPECT_TRUE(has_kernel(plan, "attention+attention_lse")) << plan.summary();
}

TEST(RopeGrouping, RopeAsValuesOrOutputKeepsItsKernel) {
  // Attention reads v without rotating it; a rope that is a graph output must be stored.
  Operands o;
  Tensor r = o.g.rope(o.v, o.offset);
  Tensor shown = o.g.rope(o.x, o.offset);
  o.g.set_outputs({o.g.attention(o.x, o.x, r), shown});
  const Plan plan = compile(o.g, DeviceCaps::lavapipe_like());
  EXPECT_EQ(plan.kernels.size(), 3u) << plan.summary();
  EXPECT_TRUE(has_kernel(plan, "attention")) << plan.summary();
}

TEST(RopeGrouping, RopeReadThroughAReshapeKeepsItsKernel) {
  Graph g;
  Tensor x = g.input("x", {2, 8, 16});
  Tensor r = g.reshape(g.rope(x, g.scalar(0.0, DType::i32)), {1, 2, 8, 16});
  g.set_outputs({g.attention(r, r, r)});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  EXPECT_TRUE(has_kernel(plan, "rope")) << plan.summary();
}

TEST(RopeGrouping, CacheWritesJoinTheAttentionThatReadsThem) {
  Graph g;
  Tensor cache_k = g.input("cache_k", {1, 2, 12, 16}), cache_v = g.input("cache_v", {1, 2, 12, 16});
  Tensor offset = g.input("offset", {1}, DType::i32);
  Tensor k = g.kv_cache_write(cache_k, g.rope(g.input("k", {1, 2, 1, 16}), offset), offset);
  Tensor v = g.kv_cache_write(cache_v, g.input("v", {1, 2, 1, 16}), offset);
  Tensor out = g.attention(g.rope(g.input("q", {1, 4, 1, 16}), offset), k, v, {.causal = true}, std::nullopt, offset);
  g.set_outputs({out, k, v});  // the caches are outputs too, as in a decode step
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  ASSERT_EQ(plan.kernels.size(), 1u) << plan.summary();
  const Kernel& kernel = plan.kernels[0];
  EXPECT_EQ(kernel.archetype, Archetype::attention);
  EXPECT_EQ(kernel.root, out.id);
  EXPECT_EQ(kernel.extra_outputs, (std::vector<int32_t>{v.id, k.id}));
  // The caches are read (the older rows) through bindings of their own and written through their
  // outputs' (the new row): q, k and v updates, the offset, the two caches.
  EXPECT_EQ(kernel.inputs.size(), 6u);
  EXPECT_EQ(std::count(kernel.inputs.begin(), kernel.inputs.end(), cache_k.id), 1);
  EXPECT_EQ(kernel.bindings[kernel.inputs.size() + 2].buffer, plan.storage[cache_k.id].buffer);
}

TEST(RopeGrouping, CacheWriteReadElsewhereOrAtAnotherOffsetKeepsItsKernel) {
  Graph g;
  Tensor cache = g.input("cache", {1, 2, 12, 16});
  Tensor offset = g.input("offset", {1}, DType::i32), other = g.input("other", {1}, DType::i32);
  Tensor q = g.input("q", {1, 2, 1, 16});
  Tensor shared = g.kv_cache_write(cache, g.input("k", {1, 2, 1, 16}), offset);
  Tensor moved = g.kv_cache_write(g.input("cache2", {1, 2, 12, 16}), g.input("k2", {1, 2, 1, 16}), other);
  g.set_outputs({g.attention(q, shared, shared, {}, std::nullopt, offset) + g.sum_all(shared),  // a second reader
                 g.attention(q, moved, moved, {}, std::nullopt, offset)});  // written at another offset
  const Plan plan = compile(g, DeviceCaps::lavapipe_like());
  for (const Kernel& kernel : plan.kernels) {
    if (kernel.archetype == Archetype::attention) {
      EXPECT_TRUE(kernel.extra_outputs.empty()) << kernel.label;
    }
  }
  EXPECT_EQ(std::count_if(plan.kernels.begin(), plan.kernels.end(), [](const Kernel& k) { return k.label == "kv_cache_write"; }),
            2) << plan.summary();
}

}  // namespace
}  // namespace meganeura::compile
