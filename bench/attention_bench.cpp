// bench_attention — fused attention forward + backward (row log-sum-exp, dQ, dK, dV) for SmolLM2-135M shapes: 9 query
// heads, 3 KV heads, head dim 64, causal, f32. Prints one JSON line per workload for bench/run.py.
//
//   build/bin/bench_attention attention_smollm2_s128 attention_smollm2_s1024
//
// Each workload is first checked against the CPU reference on one batch of the same shape (sequence
// 128: every head; sequence 1024: the same kernels at sequence 256, which the reference runs in
// seconds), then timed as the host-measured median of whole-session replays.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gpu/context.h"
#include "meganeura/error.h"
#include "meganeura/reference.h"
#include "meganeura/session.h"
#include "bench_report.h"
#include "bench_util.h"

namespace {

using namespace meganeura;

struct Problem {
  int64_t B = 1, Hq = 9, Hkv = 3, S = 128, D = 64;
};

Graph attention_graph(const Problem& p) {
  Graph g;
  Tensor q = g.input("q", {p.B, p.Hq, p.S, p.D});
  Tensor k = g.input("k", {p.B, p.Hkv, p.S, p.D});
  Tensor v = g.input("v", {p.B, p.Hkv, p.S, p.D});
  Tensor dout = g.input("dout", {p.B, p.Hq, p.S, p.D});
  const AttentionOptions options{.causal = true};
  Tensor out = g.attention(q, k, v, options);
  // What differentiate() emits: the row log-sum-exp once, shared by the three gradients.
  Tensor lse = g.attention_lse(q, k, options);
  g.set_outputs({out, g.attention_grad_q(q, k, v, out, dout, lse, options),
                 g.attention_grad_k(q, k, v, out, dout, lse, options), g.attention_grad_v(q, k, v, out, dout, lse, options)});
  return g;
}

// Worst relative error (‖got − ref‖ / ‖ref‖) over the four outputs.
double check(const Problem& p) {
  const Graph graph = attention_graph(p);
  const auto feeds = bench_util::random_feeds(graph, 3);
  Session session = bench_util::fed_inference_session(graph, feeds);
  session.run();
  const auto expected = reference::run(graph, feeds);
  double worst = 0;
  for (size_t k = 0; k < graph.outputs().size(); ++k) {
    const auto got = session.read_output(k);
    const auto& ref = expected[graph.outputs()[k]];
    double diff = 0, norm = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      diff += (got[i] - ref[i]) * (got[i] - ref[i]);
      norm += ref[i] * ref[i];
    }
    worst = std::max(worst, std::sqrt(diff / std::max(norm, 1e-30)));
  }
  return worst;
}

double median_ms(Session& session, int runs) {
  bench_report::keep_gpu_busy([&] { session.run(); });
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    session.run();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void bench(const std::string& workload, const Problem& p, const Problem& checked) {
  const double error = check(checked);
  const std::string card = gpu::Context::shared()->device().name;
  if (!(error <= 1e-4)) {
    std::printf("{\"workload\": \"%s\", \"value\": null, \"unit\": \"ms\", \"card\": \"%s\", \"check\": \"FAILED: "
                "relative error %.3g\"}\n",
                workload.c_str(), card.c_str(), error);
    return;
  }
  const Graph graph = attention_graph(p);
  Session session = bench_util::fed_inference_session(graph, bench_util::random_feeds(graph, 3));
  const double ms = median_ms(session, gpu::Context::shared()->caps().is_cpu ? 3 : 30);
  std::printf("{\"workload\": \"%s\", \"value\": %.6g, \"unit\": \"ms\", \"floor\": null, \"card\": \"%s\", "
              "\"check\": \"ok (max rel. error %.2g at S=%lld; fwd+dQ+dK+dV f32, host-timed replay)\"}\n",
              workload.c_str(), ms, card.c_str(), error, static_cast<long long>(checked.S));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> names(argv + 1, argv + argc);
  if (names.empty()) names = {"attention_smollm2_s128", "attention_smollm2_s1024"};
  try {
    if (names.count("attention_smollm2_s128")) bench("attention_smollm2_s128", {.S = 128}, {.S = 128});
    if (names.count("attention_smollm2_s1024")) bench("attention_smollm2_s1024", {.S = 1024}, {.S = 256});
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
