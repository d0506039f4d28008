// The shuffle generator is fully specified, so a checkpoint resumes with the same order on any
// platform: SplitMix64 must match the reference sequence, and the bounded draw must be uniform.
#include "data/shuffle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace md = meganeura::data;

TEST(Shuffle, SplitMix64MatchesTheReferenceSequence) {
  // First outputs of the reference splitmix64.c seeded with 0.
  md::SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(rng.next(), 0x06C45D188009454Full);
}

TEST(Shuffle, BoundedDrawsAreUniform) {
  md::SplitMix64 rng(77);
  constexpr int kBound = 7, kDraws = 70000;
  int counts[kBound] = {};
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t value = rng.below(kBound);
    ASSERT_LT(value, static_cast<uint64_t>(kBound));
    ++counts[value];
  }
  // Each bucket expects 10000 with a standard deviation of about 93; 5 sigma bounds.
  for (int count : counts) EXPECT_NEAR(count, kDraws / kBound, 470);
}

TEST(Shuffle, OrderIsAPermutationThatDependsOnSeedAndEpoch) {
  const auto a = md::shuffled_order(100, 5, 0);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(100);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(a, identity);
  EXPECT_EQ(a, md::shuffled_order(100, 5, 0));
  EXPECT_NE(a, md::shuffled_order(100, 5, 1));
  EXPECT_NE(a, md::shuffled_order(100, 6, 0));
  EXPECT_NE(md::shuffled_order(100, 5, 1), md::shuffled_order(100, 6, 0));
}
