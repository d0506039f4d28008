#include "runtime/cooperative_self_test.h"

#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"
#include "runtime/session_impl.h"

namespace meganeura::runtime {

namespace {

std::mutex& test_mutex() {
  static std::mutex mutex;
  return mutex;
}

CooperativeSelfTest& stored() {
  static CooperativeSelfTest test;
  return test;
}

thread_local bool running_here = false;

double relative_difference(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

constexpr int64_t m = 256, n = 192, k = 160;

CooperativeSelfTest run_test(const compile::DeviceCaps& caps) {
  const Graph g = cooperative_self_test_graph();

  std::mt19937 rng(20260);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  auto random_f16 = [&](size_t count) {
    std::vector<float> values(count);
    for (float& v : values) v = f16_to_f32(f32_to_f16(uniform(rng)));  // exact in f16
    return values;
  };
  const std::vector<float> av = random_f16(m * k), bv = random_f16(k * n), btv = random_f16(n * k);
  SessionOptions options;
  options.optimize = false;
  auto products = [&](const compile::DeviceCaps& session_caps, bool expect_cooperative) {
    Session session = build_session_for_caps(g, options, session_caps, false);
    size_t cooperative = 0;
    for (const compile::Kernel& kernel : session.impl().plan.kernels) cooperative += kernel.cooperative_matrix;
    if (cooperative != (expect_cooperative ? 2u : 0u)) {
      throw Error("the self-test's session took the cooperative form for " + std::to_string(cooperative) +
                  " of 2 products");
    }
    session.set_input("a", std::span<const float>(av));
    session.set_input("b", std::span<const float>(bv));
    session.set_input("bt", std::span<const float>(btv));
    session.run();
    return std::pair{session.read_output(0), session.read_output(1)};
  };

  CooperativeSelfTest test;
  compile::DeviceCaps scalar_caps = caps;
  scalar_caps.supports_cooperative_matrix = false;
  const auto [plain_scalar, transposed_scalar] = products(scalar_caps, false);
  try {
    const auto [plain, transposed] = products(cooperative_self_test_caps(caps), true);
    test.relative_error = std::max(relative_difference(plain, plain_scalar), relative_difference(transposed, transposed_scalar));
  } catch (const Error& e) {
    test.outcome = CooperativeSelfTest::Outcome::failed;
    test.detail = std::string("the cooperative-matrix matmul did not build or run: ") + e.what();
    return test;
  }
  char text[200];
  const bool passed = test.relative_error <= kCooperativeSelfTestTolerance;  // false for NaN too
  std::snprintf(text, sizeof text, "%llux%llux%llu f16 GEMM (B plain and transposed): relative error %.3g against the scalar kernel (limit %.0e)",
                static_cast<unsigned long long>(m), static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(k), test.relative_error, kCooperativeSelfTestTolerance);
  test.outcome = passed ? CooperativeSelfTest::Outcome::passed : CooperativeSelfTest::Outcome::failed;
  test.detail = text;
  return test;
}

}  // namespace

Graph cooperative_self_test_graph() {
  Graph g;
  Tensor a = g.input("a", {m, k}, DType::f16);
  Tensor b = g.input("b", {k, n}, DType::f16);
  Tensor bt = g.input("bt", {n, k}, DType::f16);
  g.set_outputs({g.matmul(a, b), g.matmul(a, bt, false, true)});
  return g;
}

compile::DeviceCaps cooperative_self_test_caps(const compile::DeviceCaps& device) {
  compile::DeviceCaps caps = device;
  caps.compute_units = 0;
  return caps;
}

const CooperativeSelfTest& cooperative_self_test(const compile::DeviceCaps& caps) {
  std::lock_guard lock(test_mutex());
  CooperativeSelfTest& test = stored();
  if (test.outcome != CooperativeSelfTest::Outcome::not_run) return test;
  running_here = true;
  try {
    test = run_test(caps);
  } catch (const Error& e) {
    test.outcome = CooperativeSelfTest::Outcome::failed;
    test.detail = std::string("the self-test's scalar reference failed: ") + e.what();
  }
  running_here = false;
  return test;
}

CooperativeSelfTest cooperative_self_test_result() {
  std::lock_guard lock(test_mutex());
  return stored();
}

std::string to_string(const CooperativeSelfTest& test) {
  switch (test.outcome) {
    case CooperativeSelfTest::Outcome::not_run: return "not run";
    case CooperativeSelfTest::Outcome::passed: return "passed: " + test.detail;
    case CooperativeSelfTest::Outcome::failed: return "failed: " + test.detail;
  }
  return "not run";
}

bool cooperative_self_test_running() { return running_here; }

void set_cooperative_self_test_result(const CooperativeSelfTest& test) {
  std::lock_guard lock(test_mutex());
  stored() = test;
}

}  // namespace meganeura::runtime
