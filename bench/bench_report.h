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

// Median wall time in milliseconds of `runs` calls, after warm-up calls for at least 0.3 s (three
// at least): after a single warm-up call, the median of a fresh SmolLM2 decode session's steps on an
// H100 read 4.8-7.2 ms in some processes, 2.8 ms in every process once 300 steps had run first.
template <typename F>
double median_ms(F&& fn, int runs) {
  const auto warm_up = std::chrono::steady_clock::now();
  for (int i = 0; i < 3 || std::chrono::steady_clock::now() - warm_up < std::chrono::milliseconds(300); ++i) fn();
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
