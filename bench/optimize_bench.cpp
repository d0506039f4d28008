// bench_optimize: optimizes the SmolLM2-135M training graph (30 layers, batch 4 × 128 tokens,
// next-token loss) the way a training session does — optimize(forward), differentiate,
// optimize(whole graph) — and prints the report. Needs no weights and no GPU.
//
//   build/bin/bench_optimize            # report, a JSON line for bench/run.py, then the summary line
//
// The graph is written with primitive ops, the way the nn layers emit them: RMSNorm as
// x·rsqrt(mean(x²)+ε)·w, the MLP as (g·sigmoid(g))·u; the fusions are left for the optimizer to find.
#include <chrono>
#include <cstdio>
#include <string>

#include "meganeura/autodiff.h"
#include "meganeura/graph.h"
#include "meganeura/optimize.h"

namespace {

using meganeura::DType;
using meganeura::Graph;
using meganeura::Init;
using meganeura::Tensor;

struct Config {
  int64_t hidden = 576, layers = 30, heads = 9, kv_heads = 3, intermediate = 1536, vocab = 49152;
  int64_t batch = 4, seq = 128;
  double eps = 1e-5, rope_theta = 100000.0;
};

Tensor rms_norm(Graph& g, Tensor x, const std::string& name, const Config& c) {
  Tensor w = g.parameter(name, {c.hidden}, Init::ones());
  return x * g.rsqrt(g.mean(x * x, -1, true) + c.eps) * w;
}

Tensor project(Graph& g, Tensor x, const std::string& name, int64_t out, int64_t in) {
  Tensor w = g.parameter(name, {out, in}, Init::normal(0, 0.02));
  return g.matmul(x, w, false, true);
}

// [B, S, H·D] → [B, H, S, D]
Tensor split_heads(Graph& g, Tensor x, int64_t heads, const Config& c) {
  return g.permute(g.reshape(x, {c.batch, c.seq, heads, c.hidden / c.heads}), {0, 2, 1, 3});
}

Graph build_forward(const Config& c) {
  Graph g;
  Tensor ids = g.input("input_ids", {c.batch, c.seq}, DType::i32);
  Tensor labels = g.input("labels", {c.batch * c.seq}, DType::i32);
  Tensor position = g.input("position_offset", {1}, DType::i32);
  Tensor table = g.parameter("model.embed_tokens.weight", {c.vocab, c.hidden}, Init::normal(0, 0.02));
  Tensor x = g.embedding(table, ids);
  const int64_t head_dim = c.hidden / c.heads, kv = c.kv_heads * head_dim;
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Tensor h = rms_norm(g, x, p + "input_layernorm.weight", c);
    Tensor q = g.rope(split_heads(g, project(g, h, p + "self_attn.q_proj.weight", c.hidden, c.hidden), c.heads, c),
                      position, c.rope_theta);
    Tensor k = g.rope(split_heads(g, project(g, h, p + "self_attn.k_proj.weight", kv, c.hidden), c.kv_heads, c),
                      position, c.rope_theta);
    Tensor v = split_heads(g, project(g, h, p + "self_attn.v_proj.weight", kv, c.hidden), c.kv_heads, c);
    Tensor a = g.attention(q, k, v, {.causal = true});
    a = g.reshape(g.permute(a, {0, 2, 1, 3}), {c.batch, c.seq, c.hidden});
    x = x + project(g, a, p + "self_attn.o_proj.weight", c.hidden, c.hidden);
    Tensor h2 = rms_norm(g, x, p + "post_attention_layernorm.weight", c);
    Tensor gate = project(g, h2, p + "mlp.gate_proj.weight", c.intermediate, c.hidden);
    Tensor up = project(g, h2, p + "mlp.up_proj.weight", c.intermediate, c.hidden);
    x = x + project(g, gate * g.sigmoid(gate) * up, p + "mlp.down_proj.weight", c.hidden, c.intermediate);
  }
  Tensor h = rms_norm(g, x, "model.norm.weight", c);
  Tensor logits = g.matmul(h, table, false, true);  // tied embeddings
  Tensor loss = g.cross_entropy_loss(g.reshape(logits, {c.batch * c.seq, c.vocab}), labels);
  g.set_name(loss, "loss");
  g.set_outputs({loss});
  return g;
}

}  // namespace

int main() {
  try {
    const Config config;
    Graph forward = build_forward(config);
    const auto start = std::chrono::steady_clock::now();
    meganeura::OptimizeResult fwd = meganeura::optimize(forward);
    meganeura::GradientGraph train = meganeura::differentiate(fwd.graph);
    meganeura::OptimizeResult whole = meganeura::optimize(train.graph);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

    std::printf("forward (%zu nodes):\n%s", forward.size(), fwd.report.to_string().c_str());
    std::printf("training graph (%zu nodes after differentiate):\n%s", train.graph.size(),
                whole.report.to_string().c_str());
    const size_t rms = fwd.report.fused("rms_norm") + whole.report.fused("rms_norm");
    const size_t swiglu = fwd.report.fused("swiglu") + whole.report.fused("swiglu");
    const bool ok = rms == size_t(2 * config.layers + 1) && swiglu == size_t(config.layers);
    std::printf("{\"workload\": \"optimize\", \"value\": %.6g, \"unit\": \"ms\", \"floor\": null, "
                "\"card\": \"cpu, 1 thread\", \"check\": \"%s\"}\n",
                ms, ok ? "ok (fusions in every layer)" : "FAILED: fusions missing in some layers");
    std::printf("optimize smollm2-135m-train: %.0f ms, %zu -> %zu nodes, %zu rms_norm, %zu swiglu, %zu dispatches\n",
                ms, train.graph.size(), whole.graph.size(), rms, swiglu, whole.report.dispatches_after);
    return ok ? 0 : 1;
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_optimize: %s\n", e.what());
    return 1;
  }
}
