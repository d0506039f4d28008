// bench_optimize: optimizes the SmolLM2-135M training graph (30 layers, batch 4 × 128 tokens,
// next-token loss) the way a training session does — optimize(forward), differentiate,
// optimize(whole graph) — and prints the report. Needs no weights and no GPU.
//
//   build/bin/bench_optimize            # report, a JSON line for bench/run.py, then the summary line
//
// The graph is built with the nn layers, which emit primitive ops (RmsNorm as x*rsqrt(mean(x^2)+eps)*w,
// the MLP as silu(g)*u written out): the fusions are left for the optimizer to find.
#include <chrono>
#include <cstdio>
#include <string>

#include "meganeura/autodiff.h"
#include "meganeura/graph.h"
#include "meganeura/nn.h"
#include "meganeura/optimize.h"

namespace {

using meganeura::DType;
using meganeura::Graph;
using meganeura::Tensor;

// SmolLM2-135M's configuration.
constexpr int64_t kLayers = 30, kVocab = 49152, kBatch = 4, kSeq = 128;
const meganeura::nn::TransformerConfig kConfig{.hidden = 576, .intermediate = 1536, .num_heads = 9,
                                               .num_kv_heads = 3, .rope_theta = 100000.0, .rms_norm_eps = 1e-5};

Graph build_forward() {
  namespace nn = meganeura::nn;
  Graph g;
  Tensor ids = g.input("input_ids", {kBatch, kSeq}, DType::i32);
  Tensor labels = g.input("labels", {kBatch * kSeq}, DType::i32);
  nn::Embedding embed(g, "model.embed_tokens", kVocab, kConfig.hidden);
  Tensor x = embed.forward(g, ids);
  for (int64_t l = 0; l < kLayers; ++l) {
    x = nn::TransformerBlock(g, "model.layers." + std::to_string(l), kConfig).forward(g, x);
  }
  Tensor h = nn::RmsNorm(g, "model.norm", kConfig.hidden, kConfig.rms_norm_eps).forward(g, x);
  Tensor logits = g.matmul(h, embed.weight, false, true);  // tied embeddings
  Tensor loss = g.cross_entropy_loss(g.reshape(logits, {kBatch * kSeq, kVocab}), labels);
  g.set_name(loss, "loss");
  g.set_outputs({loss});
  return g;
}

}  // namespace

int main() {
  try {
    Graph forward = build_forward();
    // The unoptimized training graph, for the "before" numbers.
    meganeura::GradientGraph baseline = meganeura::differentiate(forward);

    const auto start = std::chrono::steady_clock::now();
    meganeura::OptimizeResult fwd = meganeura::optimize(forward);
    meganeura::GradientGraph train = meganeura::differentiate(fwd.graph);
    meganeura::OptimizeResult whole = meganeura::optimize(train.graph);
    const double pipeline_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const double optimize_ms = fwd.report.milliseconds + whole.report.milliseconds;

    std::printf("optimize(forward), %zu nodes:\n%s", forward.size(), fwd.report.to_string().c_str());
    std::printf("optimize(training graph), %zu nodes after differentiate:\n%s", train.graph.size(),
                whole.report.to_string().c_str());
    meganeura::OptimizeOptions no_rewrites;
    no_rewrites.max_iterations = 0;  // only to read the estimate of the unoptimized graph
    meganeura::OptimizeResult unfused = meganeura::optimize(baseline.graph, no_rewrites);
    std::printf("unoptimized training graph: %zu nodes, %zu dispatches; optimized: %zu nodes, %zu dispatches\n",
                baseline.graph.size(), unfused.report.dispatches_before, whole.graph.size(),
                whole.report.dispatches_after);
    std::printf("time: optimize %.1f ms (forward %.1f + whole %.1f), with differentiate %.1f ms\n", optimize_ms,
                fwd.report.milliseconds, whole.report.milliseconds, pipeline_ms);

    const size_t rms = fwd.report.fused("rms_norm") + whole.report.fused("rms_norm");
    const size_t swiglu = fwd.report.fused("swiglu") + whole.report.fused("swiglu");
    const bool ok = rms == size_t(2 * kLayers + 1) && swiglu == size_t(kLayers);
    std::printf("{\"workload\": \"optimize\", \"value\": %.6g, \"unit\": \"ms\", \"floor\": null, "
                "\"card\": \"cpu, 1 thread\", \"check\": \"%s\"}\n",
                optimize_ms, ok ? "ok (fusions in every layer)" : "FAILED: fusions missing in some layers");
    std::printf("optimize smollm2-135m-train: %.0f ms, %zu -> %zu nodes, %zu rms_norm, %zu swiglu, %zu dispatches\n",
                optimize_ms, baseline.graph.size(), whole.graph.size(), rms, swiglu, whole.report.dispatches_after);
    return ok ? 0 : 1;
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_optimize: %s\n", e.what());
    return 1;
  }
}
