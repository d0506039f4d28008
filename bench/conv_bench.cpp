// bench_conv — implicit-GEMM conv2d of a Stable Diffusion UNet shape (batch 2, 320 channels in and
// out, 64×64, 3×3, padding 1, f32). Prints one JSON line per workload for bench/run.py.
//
//   build/bin/bench_conv conv2d_sd_unet
//
// The kernel is first checked against the CPU reference on a smaller problem with the same kernel
// size, stride and padding, then timed as the host-measured median of whole-session replays.
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
  int64_t N = 2, C = 320, H = 64, W = 64;
};

Graph conv_graph(const Problem& p) {
  Graph g;
  Tensor x = g.input("x", {p.N, p.C, p.H, p.W});
  Tensor w = g.input("w", {p.C, p.C, 3, 3});
  g.set_outputs({g.conv2d(x, w, {.padding = {1, 1}})});
  return g;
}

double check(const Problem& p) {
  const Graph graph = conv_graph(p);
  const auto feeds = bench_util::random_feeds(graph, 5);
  Session session = bench_util::fed_inference_session(graph, feeds);
  session.run();
  const auto got = session.read_output(0);
  const auto& ref = reference::run(graph, feeds)[graph.outputs()[0]];
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> names(argv + 1, argv + argc);
  if (names.empty()) names = {"conv2d_sd_unet"};
  if (!names.count("conv2d_sd_unet")) return 0;
  try {
    const std::string card = gpu::Context::shared()->device().name;
    const double error = check({.N = 1, .C = 40, .H = 19, .W = 23});
    if (!(error <= 1e-5)) {
      std::printf("{\"workload\": \"conv2d_sd_unet\", \"value\": null, \"unit\": \"TFLOP/s\", \"card\": \"%s\", "
                  "\"check\": \"FAILED: relative error %.3g\"}\n",
                  card.c_str(), error);
      return 0;
    }
    const Problem p;
    const Graph graph = conv_graph(p);
    Session session = bench_util::fed_inference_session(graph, bench_util::random_feeds(graph, 5));
    bench_report::keep_gpu_busy([&] { session.run(); });
    std::vector<double> times;
    const int runs = gpu::Context::shared()->caps().is_cpu ? 2 : 30;
    for (int i = 0; i < runs; ++i) {
      const auto start = std::chrono::steady_clock::now();
      session.run();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    const double flops = 2.0 * p.N * p.C * p.H * p.W * p.C * 9;
    std::printf("{\"workload\": \"conv2d_sd_unet\", \"value\": %.6g, \"unit\": \"TFLOP/s\", \"floor\": null, "
                "\"card\": \"%s\", \"check\": \"ok (rel. error %.2g on 1x40x19x23; f32, host-timed replay)\"}\n",
                flops / times[times.size() / 2] / 1e12, card.c_str(), error);
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_conv: %s\n", e.what());
    return 1;
  }
  return 0;
}
