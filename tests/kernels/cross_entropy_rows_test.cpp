// The cross-entropy loss over many classes runs a workgroup per row and the last workgroup to finish
// adds the rows' losses (compile::cross_entropy_loss_by_rows): against the CPU reference with
// ignored rows and probability targets, over repeated runs of one session (its arrival counter
// must start from zero every time), and bit for bit the same from run to run.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

const compile::Kernel* loss_kernel(const Session& session) {
  for (const compile::Kernel& kernel : session.impl().plan.kernels) {
    if (session.impl().plan.graph.node(kernel.anchor).op == Op::cross_entropy_loss) return &kernel;
  }
  return nullptr;
}

TEST(CrossEntropyRows, IndexLabelsWithIgnoredRowsOverRepeatedRuns) {
  Graph g;
  Tensor logits = g.input("logits", {37, 300});
  Tensor labels = g.input("labels", {37}, DType::i32);
  g.set_outputs({g.cross_entropy_loss(logits * 3.0, labels, -100)});
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(g, options, kernel_tests::test_caps(false), false);
  const compile::Kernel* kernel = loss_kernel(session);
  ASSERT_NE(kernel, nullptr);
  EXPECT_EQ(kernel->work_items, 37u);  // a workgroup per row
  EXPECT_EQ(kernel->arrival_counters, 1u);

  std::mt19937 rng(5);
  std::uniform_int_distribution<int> label(0, 299);
  for (int run = 0; run < 3; ++run) {
    reference::Feeds feeds = kernel_tests::random_inputs(g, 40 + run, {{"labels", 0}});
    for (size_t r = 0; r < feeds["labels"].size(); ++r) feeds["labels"][r] = r % 5 == static_cast<size_t>(run) ? -100 : label(rng);
    reference::Options reference_options;
    reference_options.training = false;
    const double expected = reference::run(g, feeds, reference_options)[g.outputs()[0]][0];
    kernel_tests::apply(session, g, feeds);
    kernel_tests::poison(session);
    session.run();
    const float first = session.read_output(0)[0];
    EXPECT_NEAR(first, expected, 1e-5 * std::abs(expected)) << "run " << run;
    session.run();
    EXPECT_EQ(session.read_output(0)[0], first) << "run " << run;  // the same sum, in the same order
  }
}

TEST(CrossEntropyRows, EveryRowIgnoredGivesZero) {
  Graph g;
  Tensor logits = g.input("logits", {6, 90});
  Tensor labels = g.input("labels", {6}, DType::i32);
  g.set_outputs({g.cross_entropy_loss(logits, labels, -100)});
  const auto feeds = kernel_tests::random_inputs(g, 3, {{"labels", -100}});
  const std::vector<double> errors = kernel_tests::output_errors(g, feeds, false);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_LT(errors[0], 1e-6);
}

TEST(CrossEntropyRows, ProbabilityTargetsAndSmallWorkgroups) {
  Graph g;
  Tensor logits = g.input("logits", {9, 130});
  Tensor target = g.input("target", {9, 130});
  g.set_outputs({g.cross_entropy_loss(logits * 2.0, g.softmax(target * 3.0))});
  const auto feeds = kernel_tests::random_inputs(g, 8);
  for (bool small : {false, true}) {
    const std::vector<double> errors = kernel_tests::output_errors(g, feeds, small);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LT(errors[0], 1e-5) << "small workgroups: " << small;
  }
}

}  // namespace
}  // namespace meganeura
