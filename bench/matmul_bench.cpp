// bench_matmul — square GEMM through a Session's matmul kernel. Prints one JSON line per workload
// for bench/run.py.
//
//   build/bin/bench_matmul gemm_f32 gemm_f16 gemv_smollm2   (optional: --n 512 for a smaller GEMM)
//   build/bin/bench_matmul gemm_f16_bt gemm_f16w gemm_f16_variants   (B as [N, K]; f16 weights;
//                                                                      every coop form vs scalar)
//
// gemm_f32: C = A·B, 4096³ float32 (no tensor cores). Checked before timing: 512 random entries
// of the result against float64 dot products on the host (relative to the row's magnitude). Time:
// GPU timestamps around the matmul dispatch, the last of 10 replays in one submission, median of 10
// (the time of the dispatch alone in its submission is printed beside it). gemm_f16: f16 inputs, f32
// accumulation through the cooperative-matrix kernel, checked the same way (its operands are exact in
// f16, so only the f32 accumulation errs); it reports the outcome of the kernel's numeric self-test
// as "selftest" and no time where the device has no such kernel or the self-test failed. gemv_smollm2: one
// token through SmolLM2-135M's linear shapes (x[1, K] · W[N, K]ᵀ, f32 weights), every output
// checked against float64 first; reported as weight bytes over the summed kernel time (TB/s), the
// quantity a decode step is bound by.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench_report.h"
#include "gpu/context.h"
#include "meganeura/error.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"
#include "runtime/cooperative_self_test.h"
#include "runtime/session_impl.h"

namespace {

using namespace meganeura;

std::string card_name() { return gpu::Context::shared()->device().name; }

// fp32 FMA rate of the card when known (the floor); 0 when not.
double fp32_peak_tflops(const std::string& card) {
  if (card.find("H100") != std::string::npos) return 67.0;
  if (card.find("H200") != std::string::npos) return 67.0;
  return 0.0;
}

// Dense f16 tensor-core rate (f32 accumulation) of the card when known; 0 when not.
double f16_dense_peak_tflops(const std::string& card) {
  if (card.find("H100") != std::string::npos || card.find("H200") != std::string::npos) return 989.0;
  return 0.0;
}

// weights16: B is a parameter stored as f16 (SessionOptions::weight_storage), read transposed as a
// linear layer's weight: the cooperative kernel then reads half the bytes for B.
// transpose_b: B stored [N, K] (a linear layer's weight layout; always so with weights16).
void bench_gemm(int64_t n, DType dtype, bool weights16 = false, bool transpose_b = false) {
  const std::string card = card_name();
  const bool f16 = dtype == DType::f16;
  transpose_b = transpose_b || weights16;
  const char* workload = weights16 ? "gemm_f16w" : transpose_b ? "gemm_f16_bt" : f16 ? "gemm_f16" : "gemm_f32";
  Graph g;
  // f16 inputs are stored as f16 (2 bytes an element); with f16 weights the activations stay f32.
  Tensor a = g.input("a", {n, n}, weights16 ? DType::f32 : dtype);
  Tensor b = weights16 ? g.parameter("b", {n, n}) : g.input("b", {n, n}, dtype);
  g.set_outputs({g.matmul(a, b, false, transpose_b)});
  SessionOptions options;
  options.optimize = false;
  options.timestamps = true;
  if (weights16) options.weight_storage = DType::f16;
  Session session = build_inference_session(g, options);
  std::string selftest;
  if (f16) {
    bool cooperative = false;
    for (const compile::Kernel& kernel : session.impl().plan.kernels) cooperative |= kernel.cooperative_matrix;
    selftest = runtime::to_string(runtime::cooperative_self_test_result());
    if (!cooperative) {
      std::printf("{\"workload\": \"%s\", \"value\": null, \"unit\": \"TFLOP/s\", \"card\": \"%s\", "
                  "\"note\": \"no cooperative-matrix kernel on this device\", \"selftest\": \"%s\", \"check\": \"not run\"}\n",
                  workload, card.c_str(), selftest.c_str());
      std::fflush(stdout);
      return;
    }
  }

  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> av(static_cast<size_t>(n * n)), bv(static_cast<size_t>(n * n));
  // f16 operands: values exact in f16, so the host's float64 products are the kernel's.
  auto draw = [&] { return f16 ? f16_to_f32(f32_to_f16(uniform(rng))) : uniform(rng); };
  for (float& v : av) v = draw();
  for (float& v : bv) v = draw();
  session.set_input("a", std::span<const float>(av));
  if (weights16) {
    session.set_parameter("b", std::span<const float>(bv));
  } else {
    session.set_input("b", std::span<const float>(bv));
  }
  session.run();
  const std::vector<float> c = session.read_output(0);

  // Error of sampled entries, relative to the sum of |a·b| terms (the scale rounding works on).
  std::uniform_int_distribution<int64_t> index(0, n - 1);
  double worst = 0;
  for (int s = 0; s < 512; ++s) {
    const int64_t i = index(rng), j = index(rng);
    double exact = 0, scale = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double term = static_cast<double>(av[i * n + k]) * bv[transpose_b ? j * n + k : k * n + j];
      exact += term;
      scale += std::abs(term);
    }
    worst = std::max(worst, std::abs(c[i * n + j] - exact) / scale);
  }
  // Tensor cores add in f32 but not always rounded to nearest: a looser bound for them.
  if (!(worst <= (f16 ? 1e-4 : 1e-5))) {
    std::printf("{\"workload\": \"%s\", \"value\": null, \"unit\": \"TFLOP/s\", \"card\": \"%s\", \"selftest\": \"%s\", "
                "\"check\": \"FAILED: sampled error %.3g (relative to sum |a_ik b_kj|)\"}\n",
                workload, card.c_str(), selftest.c_str(), worst);
    return;
  }
  const bool on_cpu = gpu::Context::shared()->caps().is_cpu;
  // Two timings of the one dispatch, medians of 10 samples: alone in its submission (profile(1)),
  // and the last of 10 replays submitted back to back, the GPU already busy (the reported value:
  // isolated ~1 ms dispatches measured 66-158 TFLOP/s for one kernel across runs).
  const double flop = 2.0 * static_cast<double>(n) * n * n;
  bench_report::keep_gpu_busy([&] { session.run(); });  // the check left the GPU idle
  std::vector<double> isolated_us, busy_us;
  for (int rep = 0; rep < (on_cpu ? 2 : 10); ++rep) {
    double total = 0;
    for (const KernelTime& kernel : session.profile(1)) total += kernel.microseconds;
    isolated_us.push_back(total);
    session.step_n(on_cpu ? 2 : 10);
    total = 0;
    for (uint64_t ns : session.impl().recording->dispatch_durations_ns()) total += static_cast<double>(ns) / 1000.0;
    busy_us.push_back(total);
  }
  std::sort(isolated_us.begin(), isolated_us.end());
  std::sort(busy_us.begin(), busy_us.end());
  const double tflops = flop / (busy_us[busy_us.size() / 2] * 1e-6) / 1e12;
  const double isolated_tflops = flop / (isolated_us[isolated_us.size() / 2] * 1e-6) / 1e12;
  const double floor = f16 ? f16_dense_peak_tflops(card) : fp32_peak_tflops(card);
  std::printf("{\"workload\": \"%s\", \"value\": %.6g, \"unit\": \"TFLOP/s\", \"floor\": %s, \"card\": \"%s\", "
              "%s%s%s\"check\": \"ok (%lld^3, 512 sampled entries, worst rel. error %.2g; GPU timestamps, last of 10 "
              "back-to-back replays; alone in a submission: %.4g TFLOP/s)\"}\n",
              workload, tflops, floor > 0 ? std::to_string(floor).c_str() : "null", card.c_str(),
              f16 ? "\"selftest\": \"" : "", selftest.c_str(), f16 ? "\", " : "", static_cast<long long>(n), worst,
              isolated_tflops);
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

// gemm_f16_variants: every form of the cooperative-matrix kernel against the scalar kernel on the
// same device — transposes, ragged edges, batches, a fused bias + ReLU epilogue and f16 weights
// (f32 activations rounded to f16) — as relative errors ‖coop − scalar‖ / ‖scalar‖.
void bench_f16_variants() {
  const std::string card = card_name();
  const compile::DeviceCaps caps = gpu::Context::shared()->caps();
  compile::DeviceCaps scalar_caps = caps;
  scalar_caps.supports_cooperative_matrix = false;
  struct Variant {
    std::string name;
    Graph graph;
    DType weights = DType::f32;
  };
  std::vector<Variant> variants;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [m, n, k, batch] : {std::array<int64_t, 4>{256, 384, 512, 1}, std::array<int64_t, 4>{130, 37, 21, 3}}) {
        Graph g;
        Tensor a = g.input("a", ta ? Shape{batch, k, m} : Shape{batch, m, k}, DType::f16);
        Tensor b = g.input("b", tb ? Shape{batch, n, k} : Shape{batch, k, n}, DType::f16);
        g.set_outputs({g.matmul(a, b, ta, tb)});
        variants.push_back({std::to_string(batch) + "x" + std::to_string(m) + "x" + std::to_string(n) + "x" +
                                std::to_string(k) + (ta ? " ta" : "") + (tb ? " tb" : ""),
                            std::move(g)});
      }
    }
  }
  for (auto [rows, in, out] : {std::array<int64_t, 3>{128, 576, 1536}, std::array<int64_t, 3>{70, 35, 90}}) {
    Graph g;
    Tensor x = g.input("x", {rows, in});
    Tensor w = g.parameter("w", {out, in}, Init::normal(0.0, 0.05));
    Tensor bias = g.parameter("bias", {out}, Init::normal(0.0, 0.5));
    g.set_outputs({g.relu(g.matmul(x, w, false, true) + bias)});
    variants.push_back({"linear+relu " + std::to_string(rows) + "x" + std::to_string(in) + "->" + std::to_string(out) +
                            ", f16 weights",
                        std::move(g), DType::f16});
  }
  double worst = 0;
  std::string detail, failures;
  for (const Variant& variant : variants) {
    SessionOptions options;
    options.optimize = false;
    options.weight_storage = variant.weights;
    Session coop = runtime::build_session_for_caps(variant.graph, options, caps, false);
    Session scalar = runtime::build_session_for_caps(variant.graph, options, scalar_caps, false);
    bool took = false;
    for (const compile::Kernel& kernel : coop.impl().plan.kernels) took |= kernel.cooperative_matrix;
    if (!took) {
      std::printf("{\"workload\": \"gemm_f16_variants\", \"value\": null, \"unit\": \"rel. error\", \"card\": \"%s\", "
                  "\"note\": \"no cooperative-matrix kernel on this device\", \"selftest\": \"%s\", \"check\": \"not run\"}\n",
                  card.c_str(), runtime::to_string(runtime::cooperative_self_test_result()).c_str());
      return;
    }
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> uniform(-1.f, 1.f);
    for (int32_t id : variant.graph.inputs()) {
      const Node& node = variant.graph.node(id);
      std::vector<float> values(static_cast<size_t>(num_elements(node.shape)));
      for (float& v : values) v = node.dtype == DType::f16 ? f16_to_f32(f32_to_f16(uniform(rng))) : uniform(rng);
      coop.set_input(node.name, std::span<const float>(values));
      scalar.set_input(node.name, std::span<const float>(values));
    }
    coop.run();
    scalar.run();
    const std::vector<float> got = coop.read_output(0), want = scalar.read_output(0);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
      norm += static_cast<double>(want[i]) * want[i];
    }
    const double error = std::sqrt(diff / norm);
    // f16 weights round the activations to f16 too: 1e-3 is that rounding; exact f16 operands: 1e-5.
    const double limit = variant.weights == DType::f16 ? 2e-3 : 1e-5;
    if (!(error <= limit)) failures += (failures.empty() ? "" : ", ") + variant.name + " " + std::to_string(error);
    worst = std::max(worst, variant.weights == DType::f16 ? 0.0 : error);
    char part[160];
    std::snprintf(part, sizeof part, "%s%s %.2g", detail.empty() ? "" : "; ", variant.name.c_str(), error);
    detail += part;
  }
  std::printf("{\"workload\": \"gemm_f16_variants\", \"value\": %.3g, \"unit\": \"rel. error\", \"card\": \"%s\", "
              "\"selftest\": \"%s\", \"check\": \"%s\", \"note\": \"%s\"}\n",
              worst, card.c_str(), runtime::to_string(runtime::cooperative_self_test_result()).c_str(),
              failures.empty() ? "ok (every variant within its limit)" : ("FAILED: " + failures).c_str(), detail.c_str());
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
    if (names.count("gemm_f32")) bench_gemm(n, DType::f32);
    if (names.count("gemv_smollm2")) bench_gemv();
    if (names.count("gemm_f16")) bench_gemm(n, DType::f16);
    if (names.count("gemm_f16_bt")) bench_gemm(n, DType::f16, false, true);
    if (names.count("gemm_f16w")) bench_gemm(n, DType::f16, true);
    if (names.count("gemm_f16_variants")) bench_f16_variants();
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_matmul: %s\n", e.what());
    return 1;
  }
  return 0;
}
