// RoPE fused into the kernels that read it (compile/grouping.h): attention-family kernels rotate q
// and k rows as they load them, kv_cache_write rotates the update as it copies it. Each fused rope
// saves a dispatch, and the results still match the CPU reference.
#include <algorithm>

#include "compile/plan.h"
#include "kernels/kernel_test_util.h"
#include "meganeura/models/smollm2.h"

namespace meganeura {
namespace {

struct RopeCase {
  std::string name;
  int64_t B, Hq, Hkv, S, Skv, D;
  bool causal = false;
  int offset = -1;  // >= 0: q sits at this position offset (attention reads the keys as a cache)
};

std::vector<RopeCase> rope_cases() {
  return {
      {"full_d16", 1, 2, 2, 7, 7, 16},
      {"causal_gqa_d64", 2, 4, 2, 9, 9, 64, true},
      {"full_gqa_d80", 1, 4, 2, 5, 5, 80},
      {"causal_offset_gqa_d80", 1, 6, 2, 3, 12, 80, true, 7},
      {"full_offset_d16", 1, 2, 1, 4, 10, 16, false, 5},
      {"decode_offset_gqa_d64", 1, 9, 3, 1, 24, 64, true, 20},
  };
}

size_t count_kernels(const compile::Plan& plan, const std::string& label) {
  return static_cast<size_t>(std::count_if(plan.kernels.begin(), plan.kernels.end(),
                                           [&](const compile::Kernel& k) { return k.label == label; }));
}

// Kernels of the plan the inference session compiles, fused or not.
compile::Plan plan_of(const Graph& g, bool fuse) {
  compile::CompileOptions options;
  options.fuse = fuse;
  return compile::compile(g, kernel_tests::test_caps(false), options);
}

// Every attention kernel reads rope(q) and rope(k) of its own, so all ten ropes fuse: the forward,
// the row log-sum-exp and the three gradients each rotate their q and k rows as they load them.
// Positions: q at `offset` + i (or 0 + i), keys at 0 + j, the rotation with the same positions.
Graph rope_attention_graph(const RopeCase& c) {
  Graph g;
  Tensor xq = g.input("xq", {c.B, c.Hq, c.S, c.D});
  Tensor xk = g.input("xk", {c.B, c.Hkv, c.Skv, c.D});
  Tensor v = g.input("v", {c.B, c.Hkv, c.Skv, c.D});
  Tensor dout = g.input("dout", {c.B, c.Hq, c.S, c.D});
  std::optional<Tensor> offset;
  Tensor q_position = g.scalar(0.0, DType::i32);
  if (c.offset >= 0) q_position = *(offset = g.input("offset", {1}, DType::i32));
  const Tensor k_position = g.scalar(0.0, DType::i32);
  auto q = [&]() { return g.rope(xq, q_position, 10000.0); };
  auto k = [&]() { return g.rope(xk, k_position, 10000.0); };
  AttentionOptions options{.causal = c.causal};
  Tensor out = g.attention(q(), k(), v, options, std::nullopt, offset);
  Tensor lse = g.attention_lse(q(), k(), options, std::nullopt, offset);
  g.set_outputs({out, lse, g.attention_grad_q(q(), k(), v, out, dout, lse, options, std::nullopt, offset),
                 g.attention_grad_k(q(), k(), v, out, dout, lse, options, std::nullopt, offset),
                 g.attention_grad_v(q(), k(), v, out, dout, lse, options, std::nullopt, offset)});
  return g;
}

class RopeFusionTest : public ::testing::TestWithParam<std::tuple<RopeCase, bool>> {};

TEST_P(RopeFusionTest, AttentionRotatesItsOperandsAndMatchesReference) {
  const auto& [c, small] = GetParam();
  const Graph g = rope_attention_graph(c);
  const compile::Plan fused = plan_of(g, true), unfused = plan_of(g, false);
  EXPECT_EQ(fused.kernels.size() + 10, unfused.kernels.size()) << fused.summary();
  EXPECT_EQ(count_kernels(fused, "rope"), 0u) << fused.summary();
  for (const char* op : {"attention", "attention_lse", "attention_grad_q", "attention_grad_k", "attention_grad_v"}) {
    EXPECT_EQ(count_kernels(fused, std::string("rope+rope+") + op), 1u) << op << "\n" << fused.summary();
  }

  const auto feeds = kernel_tests::random_inputs(g, 11, {{"offset", c.offset}});
  std::string summary;
  const auto errors = kernel_tests::output_errors(g, feeds, small, &summary);
  EXPECT_NE(summary.find("rope+rope+attention "), std::string::npos) << summary;
  kernel_tests::expect_attention_errors(errors, c.name, summary, 1e-5, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(RopeFusion, RopeFusionTest,
                         ::testing::Combine(::testing::ValuesIn(rope_cases()), ::testing::Bool()),
                         kernel_tests::case_and_caps_name<RopeCase>);

TEST(RopeFusion, OneRopeServesBothOperands) {
  // rope(x) as both q and k of one attention: one consumer, read twice, fused once.
  Graph g;
  Tensor x = g.input("x", {1, 2, 6, 16});
  Tensor v = g.input("v", {1, 2, 6, 16});
  Tensor r = g.rope(x, g.input("offset", {1}, DType::i32));
  g.set_outputs({g.attention(r, r, v, {.causal = true})});
  const compile::Plan plan = plan_of(g, true);
  EXPECT_EQ(count_kernels(plan, "rope+attention"), 1u) << plan.summary();
  EXPECT_EQ(plan.kernels.size() + 1, plan_of(g, false).kernels.size()) << plan.summary();
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 12, {{"offset", 3}}), false);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_LE(errors[0], 1e-5);
}

// A decode (or prefill) step as SmolLM2 writes it: rope(k) → kv_cache_write, rope(q) → attention
// over the written caches at the position offset. A decode step's (one row) ropes and cache writes
// all join the attention kernel (compile/grouping.h): one dispatch instead of five, and the caches
// it leaves behind (outputs here) are whole. A prefill keeps its writes (rope(k) fused into the
// k write) and rope(q) joins the attention: three dispatches.
void check_cached_step(int64_t S, int64_t D, int position, bool small) {
  Graph g;
  const int64_t Hq = 4, Hkv = 2, capacity = 16;
  Tensor cache_k = g.input("cache_k", {1, Hkv, capacity, D});
  Tensor cache_v = g.input("cache_v", {1, Hkv, capacity, D});
  Tensor xq = g.input("xq", {1, Hq, S, D});
  Tensor xk = g.input("xk", {1, Hkv, S, D});
  Tensor v = g.input("v", {1, Hkv, S, D});
  Tensor offset = g.input("offset", {1}, DType::i32);
  Tensor written_k = g.kv_cache_write(cache_k, g.rope(xk, offset), offset);
  Tensor written_v = g.kv_cache_write(cache_v, v, offset);
  Tensor out = g.attention(g.rope(xq, offset), written_k, written_v, {.causal = true}, std::nullopt, offset);
  g.set_outputs({out, written_k, written_v});
  const compile::Plan plan = plan_of(g, true);
  if (S == 1) {
    ASSERT_EQ(plan.kernels.size(), 1u) << plan.summary();
    EXPECT_EQ(plan.kernels[0].label, "rope+kv_cache_write+kv_cache_write+rope+attention");
    EXPECT_EQ(plan.kernels[0].extra_outputs, (std::vector<int32_t>{written_v.id, written_k.id}));
  } else {
    EXPECT_EQ(count_kernels(plan, "rope+kv_cache_write"), 1u) << plan.summary();
    EXPECT_EQ(count_kernels(plan, "rope+attention"), 1u) << plan.summary();
    EXPECT_EQ(plan.kernels.size(), 3u) << plan.summary();
  }
  EXPECT_EQ(plan_of(g, false).kernels.size(), 5u);

  const auto feeds = kernel_tests::random_inputs(g, 13, {{"offset", position}});
  std::string summary;
  const auto errors = kernel_tests::output_errors(g, feeds, small, &summary);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_LE(errors[0], 1e-5) << "attention\n" << summary;
  EXPECT_LE(errors[1], 1e-6) << "written k cache\n" << summary;
  EXPECT_LE(errors[2], 1e-6) << "written v cache\n" << summary;
}

TEST(RopeFusion, DecodeStepWritesRotatedKeysInOneDispatch) {
  for (int64_t D : {16, 64, 80}) check_cached_step(1, D, 9, false);
  check_cached_step(1, 64, 15, true);
}

TEST(RopeFusion, PrefillStepAtAnOffset) {
  check_cached_step(5, 32, 3, false);
  check_cached_step(5, 32, 11, false);  // the new rows fill the cache to its end
}

size_t count_labels_starting(const compile::Plan& plan, const std::string& prefix) {
  return static_cast<size_t>(std::count_if(plan.kernels.begin(), plan.kernels.end(), [&](const compile::Kernel& k) {
    return k.label.compare(0, prefix.size(), prefix) == 0;
  }));
}

TEST(RopeFusion, SmolLM2DecodeAndPrefillRunNoRopeKernel) {
  // The model's own graphs, optimized as the generator builds them: in a decode step every
  // layer's attention kernel rotates rope(q) and rope(k) as it loads them and writes the new k and
  // v rows into the caches itself; in a prefill the k product rotates rope(k) as it stores its rows
  // into the cache (kernels/cache_store_test.cpp) and the attention kernel rope(q).
  const models::LlamaConfig config =
      models::LlamaConfig::load(std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smollm2-tiny");
  for (int64_t length : {1, 4}) {
    const Graph g = models::decoding_graph(config, length, 16);
    Session session = runtime::build_session_for_caps(g, {}, kernel_tests::test_caps(false), false);
    const compile::Plan& plan = session.impl().plan;
    const auto layers = static_cast<size_t>(config.num_hidden_layers);
    const auto writes_and_attends = std::count_if(plan.kernels.begin(), plan.kernels.end(), [](const compile::Kernel& k) {
      return k.archetype == compile::Archetype::attention && k.label.find("kv_cache_write+kv_cache_write") != std::string::npos &&
             std::count(k.label.begin(), k.label.end(), '+') == 4;  // two ropes, two writes, the attention
    });
    EXPECT_EQ(static_cast<size_t>(writes_and_attends), length == 1 ? layers : 0u) << plan.summary();
    EXPECT_EQ(count_labels_starting(plan, "rope+kv_cache_write"), 0u) << plan.summary();
    EXPECT_EQ(count_kernels(plan, "rms_norm+matmul+reshape+permute+rope+kv_cache_write"), length == 1 ? 0u : layers)
        << plan.summary();
    EXPECT_EQ(count_labels_starting(plan, "rope+attention"), length == 1 ? 0u : layers) << plan.summary();
    // A rope of its own would be labelled "rope" or "rope (<name>)".
    EXPECT_EQ(count_labels_starting(plan, "rope "), 0u) << plan.summary();
    EXPECT_EQ(count_kernels(plan, "rope"), 0u) << plan.summary();
  }
}

TEST(RopeFusion, TrainingKeepsRopesTheBackwardReads) {
  // q and k are trained: their rope'd values feed the attention gradients too, so the ropes keep
  // their kernels; the gradients through them still match the reference.
  Graph g;
  Tensor xq = g.parameter("xq", {1, 2, 6, 16}, Init::uniform(-1, 1));
  Tensor xk = g.parameter("xk", {1, 1, 6, 16}, Init::uniform(-1, 1));
  Tensor v = g.parameter("v", {1, 1, 6, 16}, Init::uniform(-1, 1));
  Tensor w = g.input("w", {1, 2, 6, 16});
  Tensor start = g.scalar(0.0, DType::i32);
  g.set_outputs({g.sum_all(g.attention(g.rope(xq, start), g.rope(xk, start), v, {.causal = true}) * w)});
  const Session session = kernel_tests::expect_training_gradients(g, kernel_tests::random_inputs(g, 14), 6, 2e-5);
  EXPECT_EQ(count_kernels(session.impl().plan, "rope"), 2u) << session.plan_summary();
}

}  // namespace
}  // namespace meganeura
