// KernelProfile (MEGANEURA_PROFILE=1): kernels summed over replays, ordered by total time, with
// their share of all GPU time.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "meganeura/error.h"
#include "runtime/kernel_profile.h"

namespace meganeura::runtime {
namespace {

TEST(KernelProfile, SumsReplaysAndOrdersByTotalTime) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<uint64_t> duration(1'000, 90'000);
  // Two dispatches share the matmul shader but are different layers, so they stay apart.
  const std::vector<std::string> names = {"matmul", "reduction", "matmul", "optimizer"};
  const std::vector<std::string> labels = {"matmul+add (fc1)", "cross_entropy", "matmul+add (fc2)", "adam"};
  std::vector<uint64_t> expected(4, 0);
  uint64_t total = 0;
  KernelProfile profile;
  for (uint64_t replays : {1, 3}) {
    std::vector<uint64_t> ns(4);
    for (size_t i = 0; i < 4; ++i) {
      ns[i] = duration(rng);
      expected[i] += ns[i] * replays;
      total += ns[i] * replays;
    }
    profile.add(names, labels, ns, replays);
  }
  EXPECT_EQ(profile.replays(), 4u);
  EXPECT_EQ(profile.total_ns(), total);
  const auto rows = profile.rows();
  ASSERT_EQ(rows.size(), 4u);
  uint64_t summed = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (r > 0) {
      EXPECT_GE(rows[r - 1].total_ns, rows[r].total_ns);
    }
    const size_t i = std::find(labels.begin(), labels.end(), rows[r].label) - labels.begin();
    ASSERT_LT(i, labels.size());
    EXPECT_EQ(rows[r].name, names[i]);
    EXPECT_EQ(rows[r].total_ns, expected[i]);
    EXPECT_EQ(rows[r].calls, 4u);
    summed += rows[r].total_ns;
  }
  EXPECT_EQ(summed, total);

  const std::string table = profile.table("training steps");
  EXPECT_NE(table.find("over 4 training steps"), std::string::npos) << table;
  for (const std::string& label : labels) EXPECT_NE(table.find(label), std::string::npos) << table;
  // The longest kernel comes first.
  EXPECT_LT(table.find(rows[0].label), table.find(rows[3].label)) << table;
}

TEST(KernelProfile, MismatchedLengthsAreAnError) {
  KernelProfile profile;
  EXPECT_THROW(profile.add({"matmul"}, {"matmul (fc1)", "relu"}, {5, 6}, 1), Error);
}

}  // namespace
}  // namespace meganeura::runtime
