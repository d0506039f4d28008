// Small helpers shared by the reference tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "meganeura/reference.h"

namespace reference_test {

// Runs the graph and returns the value of t.
inline std::vector<double> eval(const meganeura::Graph& g, const meganeura::reference::Feeds& feeds, meganeura::Tensor t,
                                const meganeura::reference::Options& options = {}) {
  return meganeura::reference::run(g, feeds, options)[static_cast<size_t>(t.id)];
}

inline void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at element " << i;
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const meganeura::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Deterministic pseudo-random values in [-1, 1), none zero.
inline std::vector<double> random_values(size_t n, uint64_t seed) {
  std::vector<double> v(n);
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 12345;
  for (double& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = static_cast<double>(s >> 11) / 4503599627370496.0 - 1.0;
    if (x == 0.0) x = 0.5;
  }
  return v;
}

}  // namespace reference_test

#define EXPECT_ERROR(statement, part)                                                   \
  do {                                                                                  \
    const std::string message_ = reference_test::error_of([&] { statement; });          \
    EXPECT_NE(message_.find(part), std::string::npos) << message_;                      \
  } while (0)
