// bench_matmul — square GEMM through a Session's matmul kernel. Prints one JSON line per workload
// for bench/run.py.
//
//   build/bin/bench_matmul gemm_f32 gemm_f16        (optional: --n 512 for a smaller size)
//
// gemm_f32: C = A·B, 4096³ float32 (no tensor cores). Checked before timing: 512 random entries
// of the result against float64 dot products on the host (relative to the row's magnitude). Time:
// the median of 10 GPU timestamp pairs around the matmul dispatch. gemm_f16 (f16 inputs, f32
// accumulate through cooperative matrix) reports no time until that kernel exists.
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
