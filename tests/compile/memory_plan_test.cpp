#include "compile/memory_plan.h"

#include <gtest/gtest.h>

#include <random>

#include "compile/hazards.h"
#include "meganeura/error.h"

namespace meganeura::compile {
namespace {

TEST(MemoryPlan, DisjointLifetimesShareSpace) {
  std::vector<Lifetime> lifetimes = {{4096, 0, 1}, {4096, 2, 3}, {1000, 1, 2}};
  ArenaLayout layout = plan_arena(lifetimes, 256);
  EXPECT_EQ(layout.offsets[0], layout.offsets[1]);
  EXPECT_EQ(layout.peak_bytes, 4096u + 1024u);
  EXPECT_EQ(layout.total_bytes, 4096u * 2 + 1024u);
  for (uint64_t offset : layout.offsets) EXPECT_EQ(offset % 256, 0u);
}

TEST(MemoryPlan, RandomLifetimesNeverOverlapWhileLive) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<Lifetime> lifetimes;
    const int count = 5 + static_cast<int>(rng() % 40);
    for (int i = 0; i < count; ++i) {
      const int first = static_cast<int>(rng() % 30);
      lifetimes.push_back({1 + rng() % 5000, first, first + static_cast<int>(rng() % 8)});
    }
    ArenaLayout layout = plan_arena(lifetimes, 16);
    uint64_t max_live = 0;
    for (int kernel = 0; kernel < 40; ++kernel) {
      uint64_t live = 0;
      for (const auto& t : lifetimes) live += (t.first <= kernel && kernel <= t.last) ? t.bytes : 0;
      max_live = std::max(max_live, live);
    }
    for (int a = 0; a < count; ++a) {
      EXPECT_LE(layout.offsets[a] + lifetimes[a].bytes, layout.peak_bytes);
      for (int b = a + 1; b < count; ++b) {
        EXPECT_FALSE(conflicts(lifetimes[a], layout.offsets[a], lifetimes[b], layout.offsets[b]))
            << "trial " << trial << " tensors " << a << " and " << b;
      }
    }
    EXPECT_GE(layout.peak_bytes, max_live);
    EXPECT_LE(layout.peak_bytes, layout.total_bytes);
  }
}

TEST(MemoryPlan, RejectsBadInput) {
  EXPECT_THROW(plan_arena({{16, 3, 1}}, 16), Error);
  EXPECT_THROW(plan_arena({{16, 0, 1}}, 24), Error);
}

TEST(Hazards, BarrierOnlyAtRealHazards) {
  std::vector<KernelAccess> kernels = {
      {{{0, 0, 64}}, {{1, 0, 64}}},    // reads input, writes arena [0,64)
      {{{0, 0, 64}}, {{1, 64, 64}}},   // independent: no barrier
      {{{1, 0, 64}}, {{1, 128, 64}}},  // reads what kernel 0 wrote: barrier
      {{{2, 0, 8}}, {{1, 0, 32}}},     // overwrites [0,32) which kernel 2 reads (WAR): barrier
      {{{3, 0, 8}}, {{4, 0, 8}}},      // independent
      {{{3, 0, 8}}, {{4, 0, 8}}},      // rewrites what kernel 4 wrote (WAW): barrier
  };
  EXPECT_EQ(place_barriers(kernels), (std::vector<bool>{false, false, true, true, false, true}));
}

}  // namespace
}  // namespace meganeura::compile
