// The top-k / top-p sampling filter: the CPU reference on hand-checked rows, and the GPU kernel
// against the reference on random logits (with the real and with small workgroups).
#include <gtest/gtest.h>

#include <random>

#include "kernels/kernel_test_util.h"
#include "meganeura/graph.h"
#include "meganeura/reference.h"

namespace meganeura {
namespace {

constexpr double kMasked = -1e30;

// The reference mask of one [rows, V] batch as 0/1 keep flags.
std::vector<int> reference_keep(const std::vector<double>& logits, int64_t V, int64_t k, double p) {
  Graph g;
  const Tensor x = g.input("x", {static_cast<int64_t>(logits.size()) / V, V});
  const Tensor kt = g.input("k", {1}, DType::i32);
  const Tensor pt = g.input("p", {1});
  g.set_outputs({g.top_k_top_p_mask(x, kt, pt)});
  const auto values = reference::run(g, {{"x", logits}, {"k", {static_cast<double>(k)}}, {"p", {p}}});
  std::vector<int> keep;
  for (double m : values[static_cast<size_t>(g.outputs()[0])]) {
    EXPECT_TRUE(m == 0.0 || m == kMasked) << m;
    keep.push_back(m == 0.0 ? 1 : 0);
  }
  return keep;
}

TEST(TopKTopPMask, ReferenceKeepsTheKLargestWithTies) {
  const std::vector<double> row{1, 3, 2, 0, 3};
  EXPECT_EQ(reference_keep(row, 5, 1, 1.0), (std::vector<int>{0, 1, 0, 0, 1}));  // the tie at 3 stays
  EXPECT_EQ(reference_keep(row, 5, 2, 1.0), (std::vector<int>{0, 1, 0, 0, 1}));
  EXPECT_EQ(reference_keep(row, 5, 3, 1.0), (std::vector<int>{0, 1, 1, 0, 1}));
  EXPECT_EQ(reference_keep(row, 5, 0, 1.0), (std::vector<int>{1, 1, 1, 1, 1}));
  EXPECT_EQ(reference_keep(row, 5, 9, 1.0), (std::vector<int>{1, 1, 1, 1, 1}));
}

TEST(TopKTopPMask, ReferenceKeepsTheSmallestNucleusAfterTopK) {
  // Probabilities 0.5, 0.2, 0.3 (logits are their logs, shifted: softmax ignores the shift).
  const std::vector<double> row{std::log(0.5) + 1, std::log(0.2) + 1, std::log(0.3) + 1};
  EXPECT_EQ(reference_keep(row, 3, 0, 0.5), (std::vector<int>{1, 0, 0}));  // 0.5 alone reaches 0.5
  EXPECT_EQ(reference_keep(row, 3, 0, 0.6), (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(reference_keep(row, 3, 0, 0.81), (std::vector<int>{1, 1, 1}));
  // top-k 2 leaves 0.5 and 0.3, renormalised to 0.625 and 0.375.
  EXPECT_EQ(reference_keep(row, 3, 2, 0.6), (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(reference_keep(row, 3, 2, 0.7), (std::vector<int>{1, 0, 1}));
  // Rows are filtered independently.
  std::vector<double> two = row;
  two.insert(two.end(), {0.0, 5.0, 1.0});
  EXPECT_EQ(reference_keep(two, 3, 1, 1.0), (std::vector<int>{1, 0, 0, 0, 1, 0}));
}

TEST(TopKTopPMask, GpuMatchesReferenceOnRandomLogits) {
  // Rows of 1000 (one workgroup each) and of 5000 (three, each writing its run of 2048 entries).
  const int64_t rows = 3;
  const std::vector<std::pair<int, double>> limits{{0, 1.0}, {5, 1.0}, {1, 1.0}, {0, 0.9}, {50, 0.7}, {2000, 0.95}, {3, 0.2}};
  const std::vector<std::pair<int64_t, bool>> widths{{1000, false}, {1000, true}, {5000, false}};  // V, small caps
  for (const auto& [V, small] : widths)
    for (auto [k, p] : limits) {
      Graph g;
      const Tensor x = g.input("x", {rows, V});
      g.set_outputs({g.top_k_top_p_mask(x, g.input("k", {1}, DType::i32), g.input("p", {1}))});
      std::mt19937 rng(static_cast<uint32_t>(k * 31 + static_cast<int>(p * 100)));
      std::uniform_real_distribution<double> uniform(-4.0, 4.0);
      std::vector<double> logits(static_cast<size_t>(rows * V));
      for (double& v : logits) v = static_cast<double>(static_cast<float>(uniform(rng)));
      const double p32 = static_cast<float>(p);  // the GPU sees p as a float
      const reference::Feeds feeds{{"x", logits}, {"k", {static_cast<double>(k)}}, {"p", {p32}}};
      const auto keep = reference_keep(logits, V, k, p32);
      size_t kept = 0;
      for (int flag : keep) kept += static_cast<size_t>(flag);
      EXPECT_GE(kept, static_cast<size_t>(rows)) << "every row keeps its largest value";
      std::string summary;
      const auto errors = kernel_tests::output_errors(g, feeds, small, &summary);
      EXPECT_LE(errors.at(0), 1e-6) << "V=" << V << " k=" << k << " p=" << p << " small=" << small << "\n" << summary;
    }
}

TEST(TopKTopPMask, ScalarLimitsAndErrors) {
  Graph g;
  const Tensor x = g.input("x", {2, 6});
  g.set_outputs({g.top_k_top_p_mask(x, g.scalar(2, DType::i32), g.scalar(0.5))});
  reference::Feeds feeds{{"x", {0.1, -0.3, 0.7, 0.2, 0.9, -1.0, 0.5, 0.4, -0.2, 0.8, 0.0, 0.3}}};
  EXPECT_LE(kernel_tests::output_errors(g, feeds, false).at(0), 1e-6);
  Graph bad;
  EXPECT_THROW(bad.top_k_top_p_mask(bad.input("x", {4}), bad.input("k", {1}), bad.input("p", {1})), Error);
  EXPECT_THROW(bad.top_k_top_p_mask(bad.input("y", {4}), bad.input("k2", {1}, DType::i32), bad.input("p2", {2})),
               Error);
}

}  // namespace
}  // namespace meganeura
