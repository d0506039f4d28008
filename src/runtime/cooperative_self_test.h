// The numeric self-test a cooperative-matrix matmul passes before sessions use it: the first build
// on a device that would select the form runs a small GEMM (256×192×160, random f16 data, B plain
// and transposed) through it and through the scalar kernel and compares them. If they differ by more
// than 1e-3 (‖coop − scalar‖ / ‖scalar‖), or the form fails to build or run, every session of the
// process falls back to the scalar kernels, and the outcome says why.
//
//   const runtime::CooperativeSelfTest& test = runtime::cooperative_self_test(caps);  // runs once
//   if (test.outcome == runtime::CooperativeSelfTest::Outcome::failed) std::cerr << test.detail;
//   runtime::cooperative_self_test_result();   // what ran so far, without running anything
#pragma once

#include <string>

#include "compile/device_caps.h"
#include "meganeura/graph.h"

namespace meganeura::runtime {

struct CooperativeSelfTest {
  enum class Outcome { not_run, passed, failed };
  Outcome outcome = Outcome::not_run;
  double relative_error = 0;  // the larger of the two products'
  std::string detail;         // a sentence: what ran and how it compared, or why it failed
};

inline constexpr double kCooperativeSelfTestTolerance = 1e-3;

// Runs the self-test under `caps` the first time it is called in the process (later calls, from any
// thread, return that outcome). A session built while it runs skips it.
const CooperativeSelfTest& cooperative_self_test(const compile::DeviceCaps& caps);

// The outcome so far (not_run until some build needed the test).
CooperativeSelfTest cooperative_self_test_result();

// "passed", "failed: ...", "not run": for JSON and `meganeura info`.
std::string to_string(const CooperativeSelfTest& test);

// The self-test's products (outputs: a·b and a·btᵀ of f16 inputs "a", "b", "bt") and the caps its
// cooperative session compiles them under: the device's, without its compute units, so that the
// form is taken however few tiles the small products make (compile/cooperative_matmul.h:
// cooperative_tiles_fill_device).
Graph cooperative_self_test_graph();
compile::DeviceCaps cooperative_self_test_caps(const compile::DeviceCaps& device);

// True while the self-test builds its own sessions on this thread.
bool cooperative_self_test_running();

// Replaces the stored outcome (not_run: the test runs again when next needed). Tests use it on
// devices without cooperative matrices to exercise what a failed self-test does to a build.
void set_cooperative_self_test_result(const CooperativeSelfTest& test);

}  // namespace meganeura::runtime
