#include "compile/hazards.h"

#include <cstddef>

namespace meganeura::compile {

bool intersects(const MemoryRange& a, const MemoryRange& b) {
  return a.buffer == b.buffer && a.size != 0 && b.size != 0 && a.offset < b.offset + b.size &&
         b.offset < a.offset + a.size;
}

namespace {

bool any_intersects(const std::vector<MemoryRange>& ranges, const std::vector<MemoryRange>& others) {
  for (const auto& a : ranges) {
    for (const auto& b : others) {
      if (intersects(a, b)) return true;
    }
  }
  return false;
}

}  // namespace

std::vector<bool> place_barriers(const std::vector<KernelAccess>& kernels) {
  std::vector<bool> barrier_before(kernels.size(), false);
  // What the kernels since the last barrier wrote and read.
  std::vector<MemoryRange> pending_writes, pending_reads;
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    const KernelAccess& kernel = kernels[i];
    const bool hazard = any_intersects(kernel.reads, pending_writes) ||
                        any_intersects(kernel.writes, pending_writes) ||
                        any_intersects(kernel.writes, pending_reads);
    if (hazard) {
      barrier_before[i] = true;
      pending_writes.clear();
      pending_reads.clear();
    }
    pending_writes.insert(pending_writes.end(), kernel.writes.begin(), kernel.writes.end());
    pending_reads.insert(pending_reads.end(), kernel.reads.begin(), kernel.reads.end());
  }
  return barrier_before;
}

}  // namespace meganeura::compile
