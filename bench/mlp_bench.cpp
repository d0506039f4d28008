// bench_mlp — MLP training steps (SGD) and build_session time. Prints one JSON line per workload
// for bench/run.py.
//
//   build/bin/bench_mlp mlp_small_step mlp_small_latency mlp_large_step mlp_large_latency
//                       build_session_cold build_session_warm
//
// mlp_small: 784-128-10, batch 32; mlp_large: 784-1024-1024-10, batch 256 (ReLU between layers,
// cross-entropy loss, SGD lr 0.05). Before any timing, two steps are checked against the CPU
// reference: the first step's loss against the reference forward at the initial parameters, the
// second step's loss against the reference forward at the parameters the first update produced.
// step: 100 steps in one submission (step_n), the loss read back at the end, per-step median of 10.
// latency: upload of one batch, one step, loss readback; median of 100. build_session_cold: the
// first build in the process into an empty shader cache; warm: later builds with that cache filled.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench_report.h"
#include "gpu/context.h"
#include "meganeura/error.h"
#include "meganeura/reference.h"
#include "meganeura/session.h"

namespace {

using namespace meganeura;
using Clock = std::chrono::steady_clock;

struct Mlp {
  std::string prefix;
  std::vector<int64_t> dims;
  int64_t batch;
};

Graph mlp_graph(const Mlp& mlp) {
  Graph g;
  Tensor x = g.input("x", {mlp.batch, mlp.dims.front()});
  Tensor labels = g.input("labels", {mlp.batch}, DType::i32);
  for (size_t i = 0; i + 1 < mlp.dims.size(); ++i) {
    const std::string name = "fc" + std::to_string(i + 1);
    Tensor w = g.parameter(name + ".weight", {mlp.dims[i + 1], mlp.dims[i]}, Init::kaiming());
    Tensor b = g.parameter(name + ".bias", {mlp.dims[i + 1]}, Init::uniform(-0.1, 0.1));
    x = g.linear(x, w, b);
    if (i + 2 < mlp.dims.size()) x = g.relu(x);
  }
  g.set_outputs({g.cross_entropy_loss(x, labels)});
  return g;
}

struct Batch {
  std::vector<float> x;
  std::vector<int32_t> labels;
};

Batch random_batch(const Mlp& mlp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::uniform_int_distribution<int32_t> label(0, static_cast<int32_t>(mlp.dims.back() - 1));
  Batch batch;
  batch.x.resize(static_cast<size_t>(mlp.batch * mlp.dims.front()));
  for (float& v : batch.x) v = uniform(rng);
  batch.labels.resize(static_cast<size_t>(mlp.batch));
  for (int32_t& v : batch.labels) v = label(rng);
  return batch;
}

constexpr uint64_t kSeed = 7;
constexpr double kLearningRate = 0.05;

Session make_session(const Graph& graph) {
  SessionOptions options;
  options.seed = kSeed;
  options.optimizer = OptimizerSpec::sgd(kLearningRate);
  return build_session(graph, options);
}

void upload(Session& session, const Batch& batch) {
  session.set_input("x", std::span<const float>(batch.x));
  session.set_input("labels", std::span<const int32_t>(batch.labels));
}

double reference_loss(const Graph& graph, const Batch& batch, const Session* parameters_of) {
  reference::Feeds feeds;
  feeds["x"] = std::vector<double>(batch.x.begin(), batch.x.end());
  feeds["labels"] = std::vector<double>(batch.labels.begin(), batch.labels.end());
  if (parameters_of) {
    for (const std::string& name : parameters_of->parameter_names()) {
      const auto values = parameters_of->read_parameter(name);
      feeds[name] = std::vector<double>(values.begin(), values.end());
    }
  }
  const auto values = reference::run(graph, feeds, {.training = true, .seed = kSeed});
  return values[graph.outputs()[0]][0];
}

// Worst relative difference of the two checked losses against the reference.
double check(const Graph& graph, const Mlp& mlp) {
  Session session = make_session(graph);
  const Batch batch = random_batch(mlp, 1);
  upload(session, batch);
  const double first_expected = reference_loss(graph, batch, nullptr);
  session.step();
  const double first = session.read_loss();
  const double second_expected = reference_loss(graph, batch, &session);
  session.step();
  const double second = session.read_loss();
  const double worst = std::max(std::abs(first - first_expected) / std::abs(first_expected),
                                std::abs(second - second_expected) / std::abs(second_expected));
  // The update must have moved the loss, else the second check proves nothing about it.
  if (!(std::abs(second_expected - first_expected) > 1e-6)) return 1.0;
  return worst;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string card_name() { return gpu::Context::shared()->device().name; }

void emit(const std::string& workload, double value, const char* unit, const std::string& check) {
  std::printf("{\"workload\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"floor\": null, \"card\": \"%s\", "
              "\"check\": \"%s\"}\n",
              workload.c_str(), value, unit, card_name().c_str(), check.c_str());
  std::fflush(stdout);
}

void emit_failed(const std::string& workload, const char* unit, const std::string& why) {
  std::printf("{\"workload\": \"%s\", \"value\": null, \"unit\": \"%s\", \"card\": \"%s\", \"check\": \"FAILED: %s\"}\n",
              workload.c_str(), unit, card_name().c_str(), why.c_str());
  std::fflush(stdout);
}

void bench_mlp(const Mlp& mlp, const std::set<std::string>& names) {
  const std::string step_name = mlp.prefix + "_step", latency_name = mlp.prefix + "_latency";
  if (!names.count(step_name) && !names.count(latency_name)) return;
  const Graph graph = mlp_graph(mlp);
  const double error = check(graph, mlp);
  char checked[160];
  std::snprintf(checked, sizeof checked, "ok (loss rel. error %.2g over 2 steps)", error);
  if (!(error <= 1e-4)) {
    std::snprintf(checked, sizeof checked, "loss rel. error %.3g against the reference", error);
    for (const auto& name : {step_name, latency_name}) {
      if (names.count(name)) emit_failed(name, "ms", checked);
    }
    return;
  }
  Session session = make_session(graph);
  const Batch batch = random_batch(mlp, 2);
  upload(session, batch);
  const bool on_cpu = gpu::Context::shared()->caps().is_cpu;
  const std::string counts = std::to_string(session.dispatch_count()) + " dispatches, " +
                             std::to_string(session.barrier_count()) + " barriers per step";
  if (names.count(step_name)) {
    const uint32_t steps = on_cpu ? 5 : 100;
    bench_report::keep_gpu_busy([&] {
      session.step_n(steps);
      (void)session.read_loss();
    });
    std::vector<double> per_step;
    for (int rep = 0; rep < (on_cpu ? 3 : 10); ++rep) {
      const auto start = Clock::now();
      session.step_n(steps);
      const float loss = session.read_loss();
      per_step.push_back(ms_since(start) / steps);
      if (!std::isfinite(loss)) throw Error("bench_mlp: the loss diverged to " + std::to_string(loss));
    }
    emit(step_name, median(per_step), "ms", std::string(checked) + "; " + counts + "; x" + std::to_string(steps));
  }
  if (names.count(latency_name)) {
    auto latency_step = [&] {
      upload(session, batch);
      session.step();
      (void)session.read_loss();
    };
    bench_report::keep_gpu_busy(latency_step);
    std::vector<double> times;
    for (int rep = 0; rep < (on_cpu ? 5 : 100); ++rep) {
      const auto start = Clock::now();
      latency_step();
      times.push_back(ms_since(start));
    }
    emit(latency_name, median(times), "ms", std::string(checked) + "; upload + step + loss readback");
  }
}

void bench_build(const std::set<std::string>& names) {
  if (!names.count("build_session_cold") && !names.count("build_session_warm")) return;
  const Mlp mlp{"mlp_large", {784, 1024, 1024, 10}, 256};
  const Graph graph = mlp_graph(mlp);
  // An empty cache of our own, so "cold" compiles every shader whatever the user's cache holds.
  const auto cache = std::filesystem::temp_directory_path() /
                     ("meganeura-bench-cache-" + std::to_string(std::random_device{}()));
  std::filesystem::remove_all(cache);
  std::filesystem::create_directories(cache);
  ::setenv("MEGANEURA_CACHE_DIR", cache.c_str(), 1);
  (void)gpu::Context::shared();  // device creation is not part of build_session
  auto start = Clock::now();
  Session cold = make_session(graph);
  const double cold_ms = ms_since(start);
  const ShaderBuildStats cold_stats = cold.build_stats();
  std::vector<double> warm_times;
  ShaderBuildStats warm_stats;
  for (int rep = 0; rep < 5; ++rep) {
    start = Clock::now();
    Session warm = make_session(graph);
    warm_times.push_back(ms_since(start));
    warm_stats = warm.build_stats();
  }
  std::filesystem::remove_all(cache);
  if (names.count("build_session_cold")) {
    emit("build_session_cold", cold_ms, "ms",
         "ok (mlp_large + SGD; " + std::to_string(cold_stats.compiled) + " shaders compiled, " +
             std::to_string(cold_stats.cache_hits) + " cache hits; one sample)");
  }
  if (names.count("build_session_warm")) {
    emit("build_session_warm", median(warm_times), "ms",
         "ok (mlp_large + SGD; " + std::to_string(warm_stats.compiled) + " compiled, " +
             std::to_string(warm_stats.cache_hits) + " cache hits; median of 5)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> names(argv + 1, argv + argc);
  if (names.empty()) {
    names = {"mlp_small_step",   "mlp_small_latency",  "mlp_large_step",
             "mlp_large_latency", "build_session_cold", "build_session_warm"};
  }
  try {
    // Build times first: the cold build must be the first of the process.
    bench_build(names);
    bench_mlp({"mlp_small", {784, 128, 10}, 32}, names);
    bench_mlp({"mlp_large", {784, 1024, 1024, 10}, 256}, names);
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_mlp: %s\n", e.what());
    return 1;
  }
  return 0;
}
