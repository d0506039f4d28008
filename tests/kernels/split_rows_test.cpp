// Reductions over a few long rows split each row over several workgroups, the last of a row's to
// arrive combining their partial results (compile::reduction_row_split): sum, mean, max and argmax
// along the last axis and along a leading one, and a whole-tensor sum, against the CPU reference;
// argmax keeps the first index of a maximum that two workgroups both find; runs repeat exactly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

struct Outcome {
  std::vector<double> errors;
  uint32_t workgroups_per_row = 0;
};

Outcome run_split(const Graph& graph, const reference::Feeds& feeds) {
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(graph, options, kernel_tests::test_caps(false), false);
  Outcome outcome;
  for (const compile::Kernel& kernel : session.impl().plan.kernels) {
    const uint32_t split = compile::reduction_row_split(session.impl().plan.graph,
                                                        session.impl().plan.graph.node(kernel.anchor));
    if (split > 1 && outcome.workgroups_per_row == 0) outcome.workgroups_per_row = split;  // the first kernel's
  }
  kernel_tests::apply(session, graph, feeds);
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(graph, feeds, reference_options);
  std::vector<std::vector<float>> first;
  for (int run = 0; run < 2; ++run) {
    kernel_tests::poison(session);
    session.run();
    for (size_t k = 0; k < graph.outputs().size(); ++k) {
      const std::vector<float> got = session.read_output(k);
      if (run == 0) {
        first.push_back(got);
        outcome.errors.push_back(testing_support::relative_error(got, expected[graph.outputs()[k]]));
      } else if (got != first[k]) {
        outcome.errors[k] = 1;  // a second run must repeat the first bit for bit
      }
    }
  }
  return outcome;
}

TEST(SplitRows, LastAxisReductionsOfLongRows) {
  Graph g;
  Tensor x = g.input("x", {3, 40000});
  g.set_outputs({g.sum(x, 1), g.mean(x, 1), g.max(x, 1), g.argmax(x * 2.0, 1), g.sum_all(x)});
  reference::Feeds feeds = kernel_tests::random_inputs(g, 12);
  // Row 1's maximum twice, in different workgroups' runs: argmax must give the first.
  feeds["x"][40000 + 5000] = 3.0;
  feeds["x"][40000 + 31000] = 3.0;
  const Outcome outcome = run_split(g, feeds);
  EXPECT_EQ(outcome.workgroups_per_row, 20u);  // 40000 terms in runs of 2048
  ASSERT_EQ(outcome.errors.size(), 5u);
  const char* names[] = {"sum", "mean", "max", "argmax", "sum_all"};
  for (size_t k = 0; k < 5; ++k) EXPECT_LT(outcome.errors[k], 1e-5) << names[k];
}

TEST(SplitRows, LeadingAxisAndShortRowsStayWhole) {
  Graph g;
  Tensor x = g.input("x", {20000, 2});
  g.set_outputs({g.sum(x, 0), g.argmax(x, 0)});
  const Outcome outcome = run_split(g, kernel_tests::random_inputs(g, 13));
  EXPECT_EQ(outcome.workgroups_per_row, 10u);
  for (double error : outcome.errors) EXPECT_LT(error, 1e-5);
  Graph short_rows;
  Tensor y = short_rows.input("y", {3, 10000});  // under 8 runs of 2048: one workgroup per row
  short_rows.set_outputs({short_rows.sum(y, 1)});
  EXPECT_EQ(run_split(short_rows, kernel_tests::random_inputs(short_rows, 14)).workgroups_per_row, 0u);
}

}  // namespace
}  // namespace meganeura
