// optimize() on whole training graphs, the way a training session runs it: optimize(forward),
// differentiate, optimize(whole graph). Outputs (loss and every gradient) must match the
// unoptimized graph on the CPU reference, fusions must be found in every block however irregular
// the blocks are, and the result must not depend on anything but the graph.
#include <gtest/gtest.h>

#include "meganeura/autodiff.h"
#include "meganeura/optimize.h"
#include "optimize/equivalence.h"

using meganeura::DType;
using meganeura::Graph;
using meganeura::Init;
using meganeura::Op;
using meganeura::Tensor;

namespace {

using optimize_test::count_ops;

struct Trained {
  Graph reference;  // differentiate(forward), unoptimized
  Graph optimized;  // optimize(differentiate(optimize(forward)))
  meganeura::OptimizeReport forward_report, whole_report;
};

Trained train_both_ways(const Graph& forward) {
  auto fwd = meganeura::optimize(forward);
  auto train = meganeura::differentiate(fwd.graph);
  auto whole = meganeura::optimize(train.graph);
  return {meganeura::differentiate(forward).graph, std::move(whole.graph), fwd.report, whole.report};
}

struct Block {
  int64_t intermediate = 32;
  bool attention_norm = true;
  bool mlp_norm = true;
  bool square_with_pow = false;  // x² written as pow(x, 2)
};

constexpr int64_t kBatch = 2, kSeq = 4, kHidden = 16, kHeads = 4, kKvHeads = 2, kVocab = 11;

Tensor rms_norm(Graph& g, Tensor x, const std::string& name, bool use_pow) {
  Tensor w = g.parameter(name, {x.dim(-1)}, Init::normal(1, 0.1));
  Tensor square = use_pow ? g.pow(x, 2) : x * x;
  return x * g.rsqrt(g.mean(square, -1, true) + 1e-5) * w;
}

Tensor proj(Graph& g, Tensor x, const std::string& name, int64_t out) {
  return g.matmul(x, g.parameter(name, {out, x.dim(-1)}, Init::normal(0, 0.3)), false, true);
}

Tensor heads(Graph& g, Tensor x, int64_t n) {
  return g.permute(g.reshape(x, {kBatch, kSeq, n, kHidden / kHeads}), {0, 2, 1, 3});
}

// A small Llama-style decoder: embedding, blocks of attention + SwiGLU MLP, tied output head.
Graph build_decoder(const std::vector<Block>& blocks) {
  Graph g;
  Tensor ids = g.input("ids", {kBatch, kSeq}, DType::i32);
  Tensor labels = g.input("labels", {kBatch * kSeq}, DType::i32);
  Tensor position = g.input("position", {1}, DType::i32);
  Tensor table = g.parameter("embed", {kVocab, kHidden}, Init::normal(0, 0.5));
  Tensor x = g.embedding(table, ids);
  const int64_t kv = kKvHeads * (kHidden / kHeads);
  for (size_t l = 0; l < blocks.size(); ++l) {
    const Block& b = blocks[l];
    const std::string p = "block" + std::to_string(l) + ".";
    Tensor h = b.attention_norm ? rms_norm(g, x, p + "attn_norm", b.square_with_pow) : x;
    Tensor q = g.rope(heads(g, proj(g, h, p + "q", kHidden), kHeads), position);
    Tensor k = g.rope(heads(g, proj(g, h, p + "k", kv), kKvHeads), position);
    Tensor v = heads(g, proj(g, h, p + "v", kv), kKvHeads);
    Tensor a = g.reshape(g.permute(g.attention(q, k, v, {.causal = true}), {0, 2, 1, 3}), {kBatch, kSeq, kHidden});
    x = x + proj(g, a, p + "o", kHidden);
    Tensor h2 = b.mlp_norm ? rms_norm(g, x, p + "mlp_norm", b.square_with_pow) : x;
    Tensor gate = proj(g, h2, p + "gate", b.intermediate);
    Tensor up = proj(g, h2, p + "up", b.intermediate);
    x = x + proj(g, gate * g.sigmoid(gate) * up, p + "down", kHidden);
  }
  Tensor logits = g.matmul(rms_norm(g, x, "final_norm", false), table, false, true);
  g.set_outputs({g.cross_entropy_loss(g.reshape(logits, {kBatch * kSeq, kVocab}), labels)});
  return g;
}

meganeura::reference::Feeds token_feeds() {
  meganeura::reference::Feeds f;
  for (int i = 0; i < kBatch * kSeq; ++i) {
    f["ids"].push_back((i * 7 + 3) % kVocab);
    f["labels"].push_back((i * 5 + 1) % kVocab);
  }
  f["position"] = {0};
  return f;
}

}  // namespace

TEST(WholeGraph, MlpForwardBackwardKeepsLossAndGradients) {
  Graph g;
  Tensor x = g.input("x", {6, 10});
  Tensor target = g.input("target", {6, 3});
  Tensor w1 = g.parameter("fc1.weight", {12, 10}, Init::kaiming());
  Tensor b1 = g.parameter("fc1.bias", {12}, Init::normal(0, 0.1));
  Tensor w2 = g.parameter("fc2.weight", {3, 12}, Init::kaiming());
  Tensor b2 = g.parameter("fc2.bias", {3}, Init::normal(0, 0.1));
  Tensor h = g.matmul(x, w1, false, true) + b1;
  h = h * g.sigmoid(h);
  g.set_outputs({g.mse_loss(g.matmul(h, w2, false, true) + b2, target)});
  Trained t = train_both_ways(g);
  EXPECT_EQ(t.forward_report.fused("linear"), 2u);
  EXPECT_EQ(t.forward_report.fused("silu"), 1u);
  EXPECT_LT(t.whole_report.dispatches_after, t.whole_report.dispatches_before + 1);
  ASSERT_EQ(t.optimized.outputs().size(), 5u);  // loss and four gradients, names kept for the session
  const char* names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(t.optimized.node(t.optimized.outputs()[i + 1]).name, meganeura::gradient_name(names[i]));
  }
  optimize_test::expect_equivalent(t.reference, t.optimized, {}, 1e-9);
}

TEST(WholeGraph, TransformerBlockForwardBackwardKeepsLossAndGradients) {
  Graph g = build_decoder({Block{}});
  Trained t = train_both_ways(g);
  EXPECT_EQ(t.forward_report.fused("rms_norm"), 3u);
  EXPECT_EQ(t.forward_report.fused("swiglu"), 1u);
  EXPECT_EQ(count_ops(t.optimized, Op::rms_norm), 3u);
  EXPECT_EQ(count_ops(t.optimized, Op::swiglu), 1u);
  optimize_test::expect_equivalent(t.reference, t.optimized, token_feeds(), 1e-9);
}

// Repetition is found structurally: blocks of different widths, a missing norm and another way of
// writing x² still give exactly one fusion per occurrence.
TEST(WholeGraph, IrregularBlocksFuseEveryOccurrence) {
  std::vector<Block> blocks = {
      {.intermediate = 32},
      {.intermediate = 24, .attention_norm = false},
      {.intermediate = 40, .square_with_pow = true},
      {.intermediate = 8, .mlp_norm = false},
      {.intermediate = 32},
  };
  Graph g = build_decoder(blocks);
  auto r = meganeura::optimize(g);
  size_t norms = 1;  // the final norm
  for (const Block& b : blocks) norms += b.attention_norm + b.mlp_norm;
  EXPECT_EQ(r.report.fused("rms_norm"), norms);
  EXPECT_EQ(r.report.fused("swiglu"), blocks.size());
  EXPECT_EQ(count_ops(r.graph, Op::sigmoid), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::rsqrt), 0u);
  optimize_test::expect_equivalent(g, r.graph, token_feeds(), 1e-9);

  Trained t = train_both_ways(g);
  EXPECT_EQ(count_ops(t.optimized, Op::rms_norm), norms);
  EXPECT_EQ(count_ops(t.optimized, Op::swiglu), blocks.size());
  optimize_test::expect_equivalent(t.reference, t.optimized, token_feeds(), 1e-9);
}

TEST(WholeGraph, TrainingGraphIsDeterministic) {
  Graph a = build_decoder({Block{}, Block{.intermediate = 24}});
  Graph b = build_decoder({Block{}, Block{.intermediate = 24}});
  std::string first = train_both_ways(a).optimized.dump();
  EXPECT_EQ(train_both_ways(b).optimized.dump(), first);
  EXPECT_EQ(train_both_ways(a).optimized.dump(), first);
}

// Thirty blocks, as in SmolLM2-135M: the same fusions in every block, and optimization stays fast
// (the bench measures the full-size graph; shapes do not change the optimizer's work).
TEST(WholeGraph, ThirtyBlocksFuseEveryBlockQuickly) {
  Graph g = build_decoder(std::vector<Block>(30));
  Trained t = train_both_ways(g);
  EXPECT_EQ(t.forward_report.fused("rms_norm"), 61u);
  EXPECT_EQ(t.forward_report.fused("swiglu"), 30u);
  EXPECT_EQ(count_ops(t.optimized, Op::rms_norm), 61u);
  EXPECT_EQ(count_ops(t.optimized, Op::swiglu), 30u);
  EXPECT_EQ(t.whole_report.stop_reason, "saturated");
  EXPECT_LT(t.whole_report.dispatches_after, t.whole_report.dispatches_before);
  // Generous bound: the suite runs on a shared 2-core machine in a debug-info build.
  EXPECT_LT(t.forward_report.milliseconds + t.whole_report.milliseconds, 3000.0);
}
