// `meganeura bench-data-parallel`: SmolLM2-135M (its real configuration, random weights) training-step
// throughput, alone or data-parallel under mpirun, with the time of each phase of the split step:
//
//   meganeura bench-data-parallel --steps 10               # one GPU: step() and the split step
//   mpirun -np 2 meganeura bench-data-parallel --steps 10  # one rank per GPU
//
// Phases (medians over the timed steps, on rank 0): backward = forward + backward on the GPU
// (compute_gradients, fence included); read-back + all-reduce = copying the gradients to the host,
// the all-reduce of each full bucket overlapping the copy of the next, and waiting for the last;
// write-back = set_gradient of the means; update = apply_update (AdamW). Comparing the all-reduce
// alone (timed on the same buffers afterwards) with the read-back shows where the time goes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/device.h"
#include "meganeura/distributed.h"
#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/session.h"

namespace {

using namespace meganeura;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  int64_t batch = 4;  // per rank
  int64_t length = 128;
  int64_t steps = 10;
  int64_t layers = 0;  // 0: the model's 30
};

models::LlamaConfig smollm2_135m(int64_t layers) {
  models::LlamaConfig c = models::LlamaConfig::smollm2_135m();
  if (layers > 0) c.num_hidden_layers = layers;
  return c;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

void run_bench(const BenchOptions& options) {
  std::unique_ptr<distributed::MpiReducer> mpi;
  if (distributed::launched_by_mpi()) mpi = std::make_unique<distributed::MpiReducer>();
  const int rank = mpi ? mpi->rank() : 0, ranks = mpi ? mpi->world_size() : 1;
  // Each rank says which GPU it runs on, so a run shows whether the ranks really have one each.
  for (const DeviceInfo& device : list_devices()) {
    if (device.preferred) std::fprintf(stderr, "rank %d: device %u, %s\n", rank, device.index, device.name.c_str());
  }
  const models::LlamaConfig config = smollm2_135m(options.layers);
  Session session = build_session(models::training_graph(config, options.batch, options.length),
                                  {.seed = 1, .optimizer = OptimizerSpec::adamw(1e-4)});
  std::mt19937 rng(static_cast<uint32_t>(3 + rank));  // each rank its own tokens
  std::vector<int32_t> ids(static_cast<size_t>(options.batch * options.length));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(config.vocab_size));
  session.set_input("input_ids", std::span<const int32_t>(ids));
  const std::vector<int32_t> labels = models::next_token_labels(ids, options.batch, options.length);
  session.set_input("labels", std::span<const int32_t>(labels));
  if (mpi) mpi->broadcast_parameters(session);

  std::vector<std::string> trainable;
  size_t values = 0;
  for (const std::string& name : session.parameter_names()) {
    try {
      values += session.read_gradient(name).size();
      trainable.push_back(name);
    } catch (const Error&) {
    }
  }
  std::vector<std::vector<double>> sums(trainable.size());
  std::vector<double> backward, readback, writeback, update, total, step_alone, reduce_alone;
  for (int64_t step = 0; step < options.steps + 2; ++step) {  // two warm-up steps
    const Clock::time_point start = Clock::now();
    session.compute_gradients();
    const double t_backward = ms_since(start);
    Clock::time_point phase = Clock::now();
    for (size_t p = 0; p < trainable.size(); ++p) {
      const std::vector<float> gradient = session.read_gradient(trainable[p]);
      sums[p].assign(gradient.begin(), gradient.end());
      if (mpi) mpi->start_average(sums[p]);
    }
    if (mpi) mpi->finish_average();
    const double t_readback = ms_since(phase);
    phase = Clock::now();
    for (size_t p = 0; p < trainable.size(); ++p) {
      const std::vector<float> mean(sums[p].begin(), sums[p].end());
      session.set_gradient(trainable[p], mean);
    }
    const double t_writeback = ms_since(phase);
    phase = Clock::now();
    session.apply_update();
    const double t_update = ms_since(phase);
    const double t_total = ms_since(start);
    if (step < 2) continue;
    backward.push_back(t_backward);
    readback.push_back(t_readback);
    writeback.push_back(t_writeback);
    update.push_back(t_update);
    total.push_back(t_total);
    if (mpi) {
      phase = Clock::now();
      for (auto& sum : sums) mpi->start_average(sum);
      mpi->finish_average();
      reduce_alone.push_back(ms_since(phase));
    } else {
      phase = Clock::now();
      session.step();
      step_alone.push_back(ms_since(phase));
    }
  }
  if (rank != 0) return;
  const double step_ms = median(total);
  const double tokens = static_cast<double>(options.batch * options.length * ranks);
  std::printf("SmolLM2-135M (%lld layers), %d rank(s), batch %lldx%lld per rank, %zu gradient values (%.0f MiB f32)\n",
              static_cast<long long>(config.num_hidden_layers), ranks, static_cast<long long>(options.batch),
              static_cast<long long>(options.length), values, static_cast<double>(values) * 4 / (1 << 20));
  std::printf("split step %.2f ms = backward %.2f + read-back/all-reduce %.2f + write-back %.2f + update %.2f\n",
              step_ms, median(backward), median(readback), median(writeback), median(update));
  std::printf("throughput %.0f tokens/s over all ranks\n", tokens / step_ms * 1000);
  if (mpi) {
    std::printf("all-reduce alone (host memory, %zu MiB of doubles): %.2f ms\n", values * 8 >> 20,
                median(reduce_alone));
  } else {
    std::printf("step() in one submission: %.2f ms (%.0f tokens/s)\n", median(step_alone),
                tokens / median(step_alone) * 1000);
  }
  std::fflush(stdout);
}

void setup_bench_data_parallel(CLI::App& app) {
  auto* sub = app.add_subcommand("bench-data-parallel",
                                 "SmolLM2-135M training-step throughput, alone or under mpirun (one rank per GPU)");
  auto options = std::make_shared<BenchOptions>();
  sub->add_option("--batch", options->batch, "Sequences per rank")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->add_option("--length", options->length, "Tokens per sequence")->check(CLI::Range(2, 8192))->capture_default_str();
  sub->add_option("--steps", options->steps, "Timed steps (after two warm-up steps)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  sub->add_option("--layers", options->layers, "Decoder layers (0: all 30)")->check(CLI::Range(0, 30));
  sub->callback([options] { run_bench(*options); });
}
const bool registered = meganeura::cli::register_command("bench-data-parallel", setup_bench_data_parallel);

}  // namespace
