// Seeded permutations that are identical on every platform and standard library. std::shuffle and
// std::uniform_int_distribution are implementation-defined, so a checkpoint resumed on another
// toolchain would see a different order; this generator is fully specified here.
#pragma once

#include <cstdint>
#include <vector>

namespace meganeura::data {

// SplitMix64 (Steele, Lea, Flood 2014): a small generator with a 64-bit state.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next();
  // Uniform in [0, bound) without modulo bias (Lemire's multiply-and-reject method); bound > 0.
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

// The order of [0, count) for `epoch` of a run seeded with `seed`: a Fisher-Yates shuffle driven by a
// generator derived from both, so each epoch is reproducible on its own.
std::vector<int64_t> shuffled_order(int64_t count, uint64_t seed, uint64_t epoch);

}  // namespace meganeura::data
