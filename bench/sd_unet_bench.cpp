// bench_sd_unet — one denoising step of the Stable Diffusion 1.5 UNet at full size (859.5M random
// parameters, f32): batch 2, a 4×64×64 latent, a 77×768 context. Prints one JSON line for bench/run.py.
//
//   build/bin/bench_sd_unet sd_unet_step
//
// Before timing, the same optimized inference pipeline runs a smaller UNet with SD's head sizes
// (40, 80, 160) and both block kinds, checked against the CPU reference interpreter on the same
// random weights and inputs. The step is timed as the host-measured median of whole-session
// replays. On a CPU Vulkan device only the check runs (the full step would take minutes).
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
#include "meganeura/models/sd_unet.h"
#include "meganeura/reference.h"
#include "meganeura/session.h"
#include "bench_report.h"

namespace {

using namespace meganeura;
using models::UNetConfig;

constexpr uint64_t kSeed = 11;

// Three blocks of 40, 80 and 160 channels with one head each: the head sizes of SD 1.5's
// attention layers (320, 640, 1280 channels over 8 heads), on a 16×16 latent.
UNetConfig check_config() {
  UNetConfig config;
  config.block_out_channels = {40, 80, 160};
  config.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  config.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  config.attention_head_dim = {1, 1, 1};
  config.layers_per_block = 1;
  config.norm_num_groups = 8;
  config.cross_attention_dim = 48;
  return config;
}

reference::Feeds unet_feeds(const Graph& graph, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> step(0.0, 999.0);
  reference::Feeds feeds;
  for (int32_t id : graph.inputs()) {
    const Node& node = graph.node(id);
    std::vector<double> values(static_cast<size_t>(num_elements(node.shape)));
    for (double& v : values) v = node.name == "timesteps" ? std::round(step(rng)) : normal(rng);
    feeds[node.name] = values;
  }
  return feeds;
}

void upload(Session& session, const reference::Feeds& feeds) {
  for (const auto& [name, values] : feeds) {
    const std::vector<float> floats(values.begin(), values.end());
    session.set_input(name, floats);
  }
}

double check() {
  const Graph graph = models::unet_denoising_graph(check_config(), 2, 16, 16, 7);
  const auto feeds = unet_feeds(graph, 3);
  Session session = build_inference_session(graph, {.seed = kSeed});
  upload(session, feeds);
  session.run();
  const auto got = session.read_output(0);
  reference::Options options;
  options.training = false;
  options.seed = kSeed;
  options.targets = {graph.outputs()[0]};
  const reference::Values values = reference::run(graph, feeds, options);
  const std::vector<double>& want = values[static_cast<size_t>(graph.outputs()[0])];
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got.at(i) - want[i]) * (got.at(i) - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> names(argv + 1, argv + argc);
  if (names.empty()) names = {"sd_unet_step"};
  if (!names.count("sd_unet_step")) return 0;
  try {
    const std::string card = gpu::Context::shared()->device().name;
    const double error = check();
    if (!(error <= 1e-4)) {
      std::printf("{\"workload\": \"sd_unet_step\", \"value\": null, \"unit\": \"ms\", \"card\": \"%s\", "
                  "\"check\": \"FAILED: relative error %.3g against the reference\"}\n",
                  card.c_str(), error);
      return 0;
    }
    char check_text[160];
    std::snprintf(check_text, sizeof check_text,
                  "ok (rel. error %.2g vs reference, UNet 40/80/160 ch, 2x4x16x16; f32, host-timed replay)", error);
    if (gpu::Context::shared()->caps().is_cpu) {
      std::printf("{\"workload\": \"sd_unet_step\", \"value\": null, \"unit\": \"ms\", \"card\": \"%s\", "
                  "\"check\": \"%s\", \"note\": \"timing skipped on a CPU device\"}\n",
                  card.c_str(), check_text);
      return 0;
    }

    const auto build_start = std::chrono::steady_clock::now();
    const Graph graph = models::unet_denoising_graph(UNetConfig::sd15(), 2, 64, 64, 77);
    Session session = build_inference_session(graph, {.seed = kSeed});
    const double build_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
    upload(session, unet_feeds(graph, 4));
    session.run();
    const auto out = session.read_output(0);
    for (float v : out)
      if (!std::isfinite(v)) throw Error("the full-size step produced a non-finite value");
    bench_report::keep_gpu_busy([&] { session.run(); });
    std::vector<double> times;
    for (int i = 0; i < 20; ++i) {
      const auto start = std::chrono::steady_clock::now();
      session.run();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * 1e3);
    }
    std::sort(times.begin(), times.end());
    const MemorySummary memory = session.memory_summary();
    std::printf("{\"workload\": \"sd_unet_step\", \"value\": %.6g, \"unit\": \"ms\", \"floor\": null, "
                "\"card\": \"%s\", \"check\": \"%s\", \"note\": \"batch 2, 64x64x4 latent, 77x768 context; "
                "%zu dispatches; device memory %.0f MiB (arena %.0f MiB); session build %.1f s\"}\n",
                times[times.size() / 2], card.c_str(), check_text, session.dispatch_count(),
                static_cast<double>(memory.total()) / (1 << 20), static_cast<double>(memory.arena) / (1 << 20),
                build_seconds);
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_sd_unet: %s\n", e.what());
    std::printf("{\"workload\": \"sd_unet_step\", \"value\": null, \"unit\": \"ms\", \"check\": \"FAILED: error\"}\n");
    return 1;
  }
  return 0;
}
