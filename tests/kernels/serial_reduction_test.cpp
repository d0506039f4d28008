// Reductions over many short rows run one invocation per row (compile::reduces_rows_serially):
// sums, means and maxima along leading, middle and last axes, with a fused prologue, against the
// CPU reference — and long rows keep a workgroup per row.
#include "compile/plan.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

TEST(SerialReduction, ShortRowsMatchReference) {
  Graph g;
  Tensor parts = g.input("parts", {16, 4099});  // split-K partial sums: reduce the leading axis
  Tensor x = g.input("x", {3, 40, 700});
  Tensor y = g.input("y", {4100, 9});
  Tensor scale = g.input("scale", {3, 40, 700});
  g.set_outputs({g.sum(parts, 0), g.max(x, 1), g.mean(y, 1), g.sum(x * scale, 0)});
  for (const Node* node : {&g.node(g.outputs()[0]), &g.node(g.outputs()[1]), &g.node(g.outputs()[2])}) {
    EXPECT_TRUE(compile::reduces_rows_serially(g, *node)) << op_name(node->op);
  }
  for (bool small : {false, true}) {
    std::string summary;
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 11), small, &summary);
    for (size_t k = 0; k < errors.size(); ++k) EXPECT_LE(errors[k], 1e-5) << k << "\n" << summary;
  }
}

TEST(SerialReduction, LongOrFewRowsKeepAWorkgroupEach) {
  Graph g;
  Tensor wide = g.input("wide", {4096, 100});  // 100 along the last axis: too long to walk alone
  Tensor few = g.input("few", {64, 32});       // 32 rows: too few invocations
  g.set_outputs({g.sum(wide, 1), g.sum(few, 0)});
  EXPECT_FALSE(compile::reduces_rows_serially(g, g.node(g.outputs()[0])));
  EXPECT_FALSE(compile::reduces_rows_serially(g, g.node(g.outputs()[1])));
}

TEST(SerialReduction, BiasGradientsOfAThousandColumnsOverShortBatchesRunSerially) {
  Graph g;
  Tensor batch256 = g.input("batch256", {256, 1024});  // an MLP layer's bias gradient: 1024 sums of 256
  Tensor batch512 = g.input("batch512", {512, 1024});  // 512 terms: a workgroup each still
  Tensor narrow = g.input("narrow", {256, 1000});      // fewer than 1024 sums
  g.set_outputs({g.sum(batch256, 0), g.sum(batch512, 0), g.sum(narrow, 0)});
  EXPECT_TRUE(compile::reduces_rows_serially(g, g.node(g.outputs()[0])));
  EXPECT_FALSE(compile::reduces_rows_serially(g, g.node(g.outputs()[1])));
  EXPECT_FALSE(compile::reduces_rows_serially(g, g.node(g.outputs()[2])));
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 12), false);
  for (size_t k = 0; k < errors.size(); ++k) EXPECT_LE(errors[k], 1e-5) << k;
}

}  // namespace
}  // namespace meganeura
