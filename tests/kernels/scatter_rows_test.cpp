// scatter_add_rows (an embedding table's gradient) where most workgroups cover rows no id selects:
// those store zeros after one look through the ids, the rest add their source rows in order. Ids
// repeat and fall on the rows where one workgroup's elements end and the next one's begin.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

TEST(ScatterRows, SparseIdsOverAWideTable) {
  // 2000 rows of 33: 258 workgroups of 256 elements, a workgroup's rows split between two.
  Graph g;
  Tensor src = g.input("src", {12, 33});
  Tensor ids = g.input("ids", {12}, DType::i32);
  g.set_outputs({g.scatter_add_rows(src, ids, 2000)});
  reference::Feeds feeds = kernel_tests::random_inputs(g, 9, {{"ids", 0}});
  // 7 and 1999 twice; 7 ends the first workgroup's elements (256 = 7 · 33 + 25) and begins the next's.
  feeds["ids"] = {7, 1999, 0, 7, 1000, 8, 255, 31, 1999, 62, 63, 1500};
  for (bool small : {false, true}) {
    const std::vector<double> errors = kernel_tests::output_errors(g, feeds, small);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LT(errors[0], 1e-6) << "small workgroups: " << small;
  }
}

}  // namespace
}  // namespace meganeura
