// Timing and result lines shared by the whole-model benchmarks: a host-timed median and the JSON
// lines bench/run.py reads ({"workload", "value", "unit", "card", "check", "note"}).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "gpu/context.h"

namespace meganeura::bench_report {

// Calls `fn` back to back for 1.5 s (three calls at least; 0.3 s on a CPU driver) before a timing.
// An H100's driver lowers the SM clock (1980 MHz to 345–705) a few seconds into a process whose
// GPU has mostly idled while the host built sessions and prepared data, and a benchmark's short
// bursts need not bring it back: whole processes then ran 2–4× slower (a prefill 11.8 ms for 2.92,
// the 1 GiB copy 1.73 TB/s for 3.01, the f16 GEMM 34 TFLOP/s for 160). About 1.5 s of back-to-back
// work restores the clock (nvidia-smi sampled every 0.1 s beside the runs).
template <typename F>
void keep_gpu_busy(F&& fn) {
  const double seconds = gpu::Context::shared()->caps().is_cpu ? 0.3 : 1.5;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds;
       ++i) {
    fn();
  }
}

// Median wall time in milliseconds of `runs` calls, after keep_gpu_busy(fn).
template <typename F>
double median_ms(F&& fn, int runs) {
  keep_gpu_busy(fn);
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// A measured time, on the card the shared context runs on.
inline void emit(const std::string& workload, double value, const std::string& check, const std::string& note) {
  const std::string card = gpu::Context::shared()->device().name;
  std::printf("{\"workload\": \"%s\", \"value\": %.6g, \"unit\": \"ms\", \"floor\": null, \"card\": \"%s\", "
              "\"check\": \"%s\", \"note\": \"%s\"}\n",
              workload.c_str(), value, card.c_str(), check.c_str(), note.c_str());
  std::fflush(stdout);
}

// A workload whose check failed (or that could not run): no time is reported.
inline void emit_failed(const std::string& workload, const std::string& why) {
  std::printf("{\"workload\": \"%s\", \"value\": null, \"unit\": \"ms\", \"check\": \"FAILED: %s\"}\n", workload.c_str(),
              why.c_str());
  std::fflush(stdout);
}

}  // namespace meganeura::bench_report
