#include "compile/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::compile {

namespace {

uint64_t round_up(uint64_t value, uint64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

bool lifetimes_overlap(const Lifetime& a, const Lifetime& b) { return a.first <= b.last && b.first <= a.last; }

}  // namespace

bool conflicts(const Lifetime& a, uint64_t offset_a, const Lifetime& b, uint64_t offset_b) {
  if (a.bytes == 0 || b.bytes == 0 || !lifetimes_overlap(a, b)) return false;
  return offset_a < offset_b + b.bytes && offset_b < offset_a + a.bytes;
}

ArenaLayout plan_arena(const std::vector<Lifetime>& lifetimes, uint64_t alignment) {
  trace::Scope trace_scope("memory planning", std::to_string(lifetimes.size()) + " intermediates");
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    throw Error("plan_arena: alignment " + std::to_string(alignment) + " is not a power of two");
  }
  ArenaLayout layout;
  layout.offsets.assign(lifetimes.size(), 0);
  for (size_t i = 0; i < lifetimes.size(); ++i) {
    if (lifetimes[i].last < lifetimes[i].first) {
      throw Error("plan_arena: tensor " + std::to_string(i) + " ends (kernel " + std::to_string(lifetimes[i].last) +
                  ") before it starts (kernel " + std::to_string(lifetimes[i].first) + ")");
    }
    layout.total_bytes += round_up(lifetimes[i].bytes, alignment);
  }

  // Largest first; ties by earlier start so the order (and so the layout) is deterministic.
  std::vector<size_t> order(lifetimes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (lifetimes[a].bytes != lifetimes[b].bytes) return lifetimes[a].bytes > lifetimes[b].bytes;
    return lifetimes[a].first < lifetimes[b].first;
  });

  std::vector<size_t> placed;
  for (size_t index : order) {
    const Lifetime& tensor = lifetimes[index];
    if (tensor.bytes == 0) continue;
    // The ranges already placed whose lifetimes overlap this one, by offset: take the first gap.
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (size_t other : placed) {
      if (lifetimes_overlap(tensor, lifetimes[other])) {
        busy.emplace_back(layout.offsets[other], layout.offsets[other] + lifetimes[other].bytes);
      }
    }
    std::sort(busy.begin(), busy.end());
    uint64_t candidate = 0;
    for (const auto& [begin, end] : busy) {
      if (candidate + tensor.bytes <= begin) break;
      candidate = std::max(candidate, round_up(end, alignment));
    }
    layout.offsets[index] = candidate;
    layout.peak_bytes = std::max(layout.peak_bytes, round_up(candidate + tensor.bytes, alignment));
    placed.push_back(index);
  }
  return layout;
}

}  // namespace meganeura::compile
