// bench_matmul — square GEMM through a Session's matmul kernel. Prints one JSON line per workload
// for bench/run.py.
//
//   build/bin/bench_matmul gemm_f32 gemm_f16 gemv_smollm2   (optional: --n 512 for a smaller GEMM)
//
// gemm_f32: C = A·B, 4096³ float32 (no tensor cores). Checked before timing: 512 random entries
// of the result against float64 dot products on the host (relative to the row's magnitude). Time:
// the median of 10 GPU timestamp pairs around the matmul dispatch. gemm_f16 (f16 inputs, f32
// accumulate through cooperative matrix) reports no time until that kernel exists. gemv_smollm2: one
// token through SmolLM2-135M's linear shapes (x[1, K] · W[N, K]ᵀ, f32 weights), every output
// checked against float64 first; reported as weight bytes over the summed kernel time (TB/s), the
// quantity a decode step is bound by.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gpu/context.h"
#include "meganeura/error.h"
#include "meganeura/session.h"

namespace {

using namespace meganeura;

std::string card_name() { return gpu::Context::shared()->device().name; }

// fp32 FMA rate of the card when known (the floor); 0 when not.
double fp32_peak_tflops(const std::string& card) {
  if (card.find("H100") != std::string::npos) return 67.0;
  if (card.find("H200") != std::string::npos) return 67.0;
  return 0.0;
}

void bench_f32(int64_t n) {
  const std::string card = card_name();
  Graph g;
  Tensor a = g.input("a", {n, n});
  Tensor b = g.input("b", {n, n});
  g.set_outputs({g.matmul(a, b)});
  SessionOptions options;
  options.optimize = false;
  options.timestamps = true;
  Session session = build_inference_session(g, options);

  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> av(static_cast<size_t>(n * n)), bv(static_cast<size_t>(n * n));
  for (float& v : av) v = uniform(rng);
  for (float& v : bv) v = uniform(rng);
  session.set_input("a", std::span<const float>(av));
  session.set_input("b", std::span<const float>(bv));
  session.run();
  const std::vector<float> c = session.read_output(0);

  // Error of sampled entries, relative to the sum of |a·b| terms (the scale rounding works on).
  std::uniform_int_distribution<int64_t> index(0, n - 1);
  double worst = 0;
  for (int s = 0; s < 512; ++s) {
    const int64_t i = index(rng), j = index(rng);
    double exact = 0, scale = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double term = static_cast<double>(av[i * n + k]) * bv[k * n + j];
      exact += term;
      scale += std::abs(term);
    }
    worst = std::max(worst, std::abs(c[i * n + j] - exact) / scale);
  }
  if (!(worst <= 1e-5)) {
    std::printf("{\"workload\": \"gemm_f32\", \"value\": null, \"unit\": \"TFLOP/s\", \"card\": \"%s\", \"check\": "
                "\"FAILED: sampled error %.3g (relative to sum |a_ik b_kj|)\"}\n",
                card.c_str(), worst);
    return;
  }
  const bool on_cpu = gpu::Context::shared()->caps().is_cpu;
  std::vector<double> us;
  for (int rep = 0; rep < (on_cpu ? 2 : 10); ++rep) {
    double total = 0;
    for (const KernelTime& kernel : session.profile(1)) total += kernel.microseconds;
    us.push_back(total);
  }
  std::sort(us.begin(), us.end());
  const double tflops = 2.0 * static_cast<double>(n) * n * n / (us[us.size() / 2] * 1e-6) / 1e12;
  const double floor = fp32_peak_tflops(card);
  std::printf("{\"workload\": \"gemm_f32\", \"value\": %.6g, \"unit\": \"TFLOP/s\", \"floor\": %s, \"card\": \"%s\", "
              "\"check\": \"ok (%lld^3, 512 sampled entries, worst rel. error %.2g; GPU timestamps)\"}\n",
              tflops, floor > 0 ? std::to_string(floor).c_str() : "null", card.c_str(), static_cast<long long>(n),
              worst);
  std::fflush(stdout);
}

// Fills a session's inputs with uniform(-1, 1) values and returns them.
std::vector<std::vector<float>> random_inputs(Session& session, const std::vector<std::pair<std::string, size_t>>& sizes,
                                              uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<std::vector<float>> values;
  for (const auto& [name, count] : sizes) {
    values.emplace_back(count);
    for (float& v : values.back()) v = uniform(rng);
    session.set_input(name, std::span<const float>(values.back()));
  }
  return values;
}

void bench_gemv() {
  const std::string card = card_name();
  struct Shape2 {
    int64_t n, k;
    int count;  // how many such layers one decode step runs (30 layers; lm_head once)
  };
  const Shape2 shapes[] = {{576, 576, 60}, {192, 576, 60}, {1536, 576, 60}, {576, 1536, 30}, {49152, 576, 1}};
  const bool on_cpu = gpu::Context::shared()->caps().is_cpu;
  double step_bytes = 0, step_us = 0, worst = 0;
  std::string detail;
  for (const Shape2& shape : shapes) {
    Graph g;
    Tensor x = g.input("x", {1, shape.k});
    Tensor w = g.input("w", {shape.n, shape.k});
    g.set_outputs({g.matmul(x, w, false, true)});
    SessionOptions options;
    options.optimize = false;
    options.timestamps = true;
    Session session = build_inference_session(g, options);
    const auto values = random_inputs(
        session, {{"x", static_cast<size_t>(shape.k)}, {"w", static_cast<size_t>(shape.n * shape.k)}}, 9);
    session.run();
    const std::vector<float> y = session.read_output(0);
    for (int64_t j = 0; j < shape.n; ++j) {
      double exact = 0, scale = 0;
      for (int64_t kk = 0; kk < shape.k; ++kk) {
        const double term = static_cast<double>(values[0][kk]) * values[1][j * shape.k + kk];
        exact += term;
        scale += std::abs(term);
      }
      worst = std::max(worst, std::abs(y[j] - exact) / scale);
    }
    std::vector<double> us;
    for (int rep = 0; rep < (on_cpu ? 2 : 20); ++rep) {
      double total = 0;
      for (const KernelTime& kernel : session.profile(1)) total += kernel.microseconds;
      us.push_back(total);
    }
    std::sort(us.begin(), us.end());
    const double median_us = us[us.size() / 2];
    const double bytes = 4.0 * static_cast<double>(shape.n) * shape.k;
    step_bytes += bytes * shape.count;
    step_us += median_us * shape.count;
    char part[96];
    std::snprintf(part, sizeof part, "%s%lldx%lld %.2f us %.2f TB/s", detail.empty() ? "" : ", ",
                  static_cast<long long>(shape.n), static_cast<long long>(shape.k), median_us,
                  bytes / (median_us * 1e-6) / 1e12);
    detail += part;
  }
  if (!(worst <= 1e-5)) {
    std::printf("{\"workload\": \"gemv_smollm2\", \"value\": null, \"unit\": \"TB/s\", \"card\": \"%s\", \"check\": "
                "\"FAILED: worst rel. error %.3g\"}\n",
                card.c_str(), worst);
    return;
  }
  const double floor = card.find("H100") != std::string::npos ? 3.35 : 0.0;
  std::printf("{\"workload\": \"gemv_smollm2\", \"value\": %.6g, \"unit\": \"TB/s\", \"floor\": %s, \"card\": \"%s\", "
              "\"check\": \"ok (every output, worst rel. error %.2g); one decode step of weights: %.1f us; %s\"}\n",
              step_bytes / (step_us * 1e-6) / 1e12, floor > 0 ? "3.35" : "null", card.c_str(), worst, step_us,
              detail.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> names;
  int64_t n = 4096;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
      n = std::atoll(argv[++i]);
    } else {
      names.insert(argv[i]);
    }
  }
  if (names.empty()) names = {"gemm_f32", "gemm_f16"};
  try {
    if (names.count("gemm_f32")) bench_f32(n);
    if (names.count("gemv_smollm2")) bench_gemv();
    if (names.count("gemm_f16")) {
      std::printf("{\"workload\": \"gemm_f16\", \"value\": null, \"unit\": \"TFLOP/s\", \"card\": \"%s\", "
                  "\"note\": \"no cooperative-matrix kernel yet\", \"check\": \"not run\"}\n",
                  card_name().c_str());
    }
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_matmul: %s\n", e.what());
    return 1;
  }
  return 0;
}
