// Barrier placement: a barrier goes before a kernel only when it reads or overwrites memory that an
// earlier kernel, not yet separated from it by a barrier, wrote (read-after-write, write-after-write),
// or overwrites memory such a kernel still reads (write-after-read: arena space reused by the memory
// planner). Kernels between two barriers may run concurrently on the GPU.
//
//   std::vector<compile::KernelAccess> kernels = {
//       {.reads = {{0, 0, 64}}, .writes = {{1, 0, 64}}},
//       {.reads = {{1, 0, 64}}, .writes = {{2, 0, 64}}}};   // reads what kernel 0 wrote
//   compile::place_barriers(kernels);  // {false, true}
#pragma once

#include <cstdint>
#include <vector>

namespace meganeura::compile {

// A byte range of one buffer (buffer ids are the plan's own numbering).
struct MemoryRange {
  uint32_t buffer = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct KernelAccess {
  std::vector<MemoryRange> reads;
  std::vector<MemoryRange> writes;
};

bool intersects(const MemoryRange& a, const MemoryRange& b);

// One flag per kernel: true when a barrier must precede it.
std::vector<bool> place_barriers(const std::vector<KernelAccess>& kernels);

}  // namespace meganeura::compile
