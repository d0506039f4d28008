// Memory planning by liveness: tensors whose lifetimes do not overlap share arena space.
//
//   std::vector<compile::Lifetime> lifetimes = {{.bytes = 4096, .first = 0, .last = 1},
//                                               {.bytes = 4096, .first = 2, .last = 3}};
//   compile::ArenaLayout layout = compile::plan_arena(lifetimes, /*alignment=*/256);
//   layout.offsets[1] == layout.offsets[0];   // the second reuses the first's space
//   layout.peak_bytes == 4096;
//
// Lifetimes are inclusive ranges of kernel positions: a tensor is live from the kernel that writes
// it to the last kernel that reads it. Placement is greedy by size (largest first, each at the
// lowest offset free during its whole lifetime), which is simple and close to optimal for the
// chain-shaped lifetimes of neural-network steps.
#pragma once

#include <cstdint>
#include <vector>

namespace meganeura::compile {

struct Lifetime {
  uint64_t bytes = 0;
  int first = 0;  // first kernel that touches the tensor
  int last = 0;   // last kernel that touches it (inclusive)
};

struct ArenaLayout {
  std::vector<uint64_t> offsets;  // one per lifetime, multiples of the alignment
  uint64_t peak_bytes = 0;        // arena size needed
  uint64_t total_bytes = 0;       // what the tensors would need without sharing
};

// Throws meganeura::Error for a lifetime whose last < first or an alignment that is not a power of two.
ArenaLayout plan_arena(const std::vector<Lifetime>& lifetimes, uint64_t alignment);

// True when two lifetimes share a kernel position and their byte ranges intersect (tests use it
// to prove a layout sound).
bool conflicts(const Lifetime& a, uint64_t offset_a, const Lifetime& b, uint64_t offset_b);

}  // namespace meganeura::compile
