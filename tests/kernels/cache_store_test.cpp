// A prefill's k and v products store their head-split rows straight into the caches (compile/
// grouping.h): the v write joins its product, and so does the k write with its rope where the
// product's 64×64 tiles hold whole heads (the kernel rotates its tile through shared memory). The
// caches and the attention over them match the CPU reference.
#include <algorithm>

#include "compile/grouping.h"
#include "compile/plan.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

struct PrefillCase {
  int64_t batch, rows, heads, kv_heads, dim, k, capacity;
  int offset;
};

// A layer's attention half as SmolLM2 writes it: q, k and v products of one RMSNorm, split into
// heads, rope(q) and rope(k) at the offset (k only when `rotate_k`), the cache writes, attention.
Graph prefill_step(const PrefillCase& c, bool rotate_k) {
  Graph g;
  Tensor x = g.input("x", {c.batch, c.rows, c.k});
  Tensor normed = g.rms_norm(x, g.input("gain", {c.k}), 1e-5);
  Tensor offset = g.input("offset", {1}, DType::i32);
  auto heads = [&](const std::string& name, int64_t count) {
    Tensor product = g.matmul(normed, g.input(name, {count * c.dim, c.k}), false, true);
    return g.permute(g.reshape(product, {c.batch, c.rows, count, c.dim}), {0, 2, 1, 3});
  };
  Tensor key = heads("wk", c.kv_heads);
  if (rotate_k) key = g.rope(key, offset);
  Tensor cache_k = g.kv_cache_write(g.input("cache_k", {c.batch, c.kv_heads, c.capacity, c.dim}), key, offset);
  Tensor cache_v = g.kv_cache_write(g.input("cache_v", {c.batch, c.kv_heads, c.capacity, c.dim}), heads("wv", c.kv_heads),
                                    offset);
  Tensor out = g.attention(g.rope(heads("wq", c.heads), offset), cache_k, cache_v, {.causal = true}, std::nullopt, offset);
  g.set_outputs({out, cache_k, cache_v});
  return g;
}

const compile::Kernel* writing_kernel(const compile::Plan& plan, bool rotated) {
  for (const compile::Kernel& kernel : plan.kernels) {
    if (plan.graph.node(kernel.root).op != Op::kv_cache_write) continue;
    const bool rotates = std::any_of(kernel.nodes.begin(), kernel.nodes.end(),
                                     [&](int32_t id) { return plan.graph.node(id).op == Op::rope; });
    if (rotates == rotated) return &kernel;
  }
  return nullptr;
}

void expect_matches_reference(const Graph& g, const PrefillCase& c, bool small, uint32_t seed) {
  std::string summary;
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, seed, {{"offset", c.offset}}),
                                                  small, &summary);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_LE(errors[0], 2e-5) << "attention\n" << summary;
  EXPECT_LE(errors[1], 2e-5) << "k cache\n" << summary;
  EXPECT_LE(errors[2], 2e-5) << "v cache\n" << summary;
}

TEST(CacheStore, ProductsWriteTheirRowsIntoTheCaches) {
  // Partial tiles and a batch; rows filling the cache to its end; a long K that splits; a head of
  // 16 (four in a tile).
  bool split = false;
  for (const PrefillCase& c : {PrefillCase{2, 70, 4, 2, 64, 40, 80, 0}, PrefillCase{1, 5, 6, 2, 32, 24, 16, 11},
                               PrefillCase{1, 9, 2, 2, 64, 600, 20, 4}, PrefillCase{1, 6, 4, 4, 16, 32, 12, 2}}) {
    const Graph g = prefill_step(c, true);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
    const compile::Kernel* k = writing_kernel(plan, true);
    const compile::Kernel* v = writing_kernel(plan, false);
    ASSERT_NE(k, nullptr) << plan.summary();
    ASSERT_NE(v, nullptr) << plan.summary();
    EXPECT_EQ(k->archetype, compile::Archetype::matmul) << plan.summary();
    EXPECT_EQ(v->archetype, compile::Archetype::matmul) << plan.summary();
    EXPECT_GE(compile::rotated_cache_store(plan.graph, *k), 0);
    EXPECT_EQ(compile::rotated_cache_store(plan.graph, *v), -1);
    EXPECT_EQ(k->register_tile[0] * k->local_size[0], 64u) << "the rotating form's tiles hold whole heads";
    split = split || k->split_k > 1;
    // The products, then the attention: two stages, no kernel of the writes' own.
    EXPECT_EQ(plan.kernels.size(), 4u) << plan.summary();
    EXPECT_EQ(std::count_if(plan.kernels.begin(), plan.kernels.end(), [](const compile::Kernel& kernel) {
                return kernel.barrier_before;
              }), 1) << plan.summary();
    expect_matches_reference(g, c, false, 71);
  }
  EXPECT_TRUE(split) << "no case split K";
}

TEST(CacheStore, UnrotatedKeysAndSmallDevicesKeepTheRopeInTheWrite) {
  const PrefillCase c{1, 7, 4, 2, 32, 24, 16, 3};
  // Without the rope both writes join their products, in any tiled form.
  for (bool small : {false, true}) {
    const Graph g = prefill_step(c, false);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(small));
    const compile::Kernel* k = writing_kernel(plan, false);
    ASSERT_NE(k, nullptr) << plan.summary();
    EXPECT_EQ(k->archetype, compile::Archetype::matmul) << plan.summary();
    EXPECT_EQ(plan.kernels.size(), 4u) << plan.summary();
    expect_matches_reference(g, c, small, 72);
  }
  // A device whose workgroups cannot take the 64×64 tiles keeps the rope'd write a kernel of its own.
  const Graph g = prefill_step(c, true);
  const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(true));
  const compile::Kernel* k = writing_kernel(plan, true);
  ASSERT_NE(k, nullptr) << plan.summary();
  EXPECT_EQ(k->archetype, compile::Archetype::gather) << plan.summary();
  EXPECT_EQ(writing_kernel(plan, false)->archetype, compile::Archetype::matmul) << plan.summary();
  expect_matches_reference(g, c, true, 73);
}

TEST(CacheStore, HeadsWiderThanATileKeepTheRopeInTheWrite) {
  // 80 and 128 columns a head: a 64-column tile does not hold a head's pairs.
  for (int64_t dim : {80, 128}) {
    const PrefillCase c{1, 4, 2, 1, dim, 16, 8, 2};
    const Graph g = prefill_step(c, true);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
    const compile::Kernel* k = writing_kernel(plan, true);
    ASSERT_NE(k, nullptr) << plan.summary();
    EXPECT_EQ(k->archetype, compile::Archetype::gather) << plan.summary();
    expect_matches_reference(g, c, false, 74);
  }
}

}  // namespace
}  // namespace meganeura
