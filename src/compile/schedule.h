// Kernel order: groups sorted by dependency depth, so kernels that do not depend on each other sit
// next to each other and share a stage between two barriers (compile/hazards.h). Group order from
// grouping is topological but follows node ids: a SmolLM2 prefill layer computed its q, k and v
// products in three different stages.
//
//   std::vector<Group> groups = group_nodes(graph, keep, true, true);
//   order_by_depth(graph, groups, owner);  // owner: the node whose storage each node uses
#pragma once

#include <cstdint>
#include <vector>

#include "compile/grouping.h"

namespace meganeura::compile {

// Stable-sorts `groups` (in a dependency-respecting order) by depth: one more than the deepest
// group whose value a member reads. A KV-cache write goes after every group reading the cache's
// previous contents (`owner` maps a node to the node owning its storage: a write's output is its
// cache input).
void order_by_depth(const Graph& graph, std::vector<Group>& groups, const std::vector<int32_t>& owner);

// Runs of consecutive kernels none of which reads or writes a value another kernel of the run
// writes: the stages they can share once their storage does not overlap. Memory planning widens
// arena lifetimes to whole runs, so that kernels of one run never reuse each other's space (split-K
// partial sums kept only for their own kernel put SmolLM2's q, k and v products in three stages).
// reads[k] and writes[k]: the values (storage owners) kernel k reads and writes.
struct IndependentRun {
  int first = 0;  // position of the run's first kernel
  int last = 0;   // and of its last (inclusive)
};
std::vector<IndependentRun> independent_runs(const std::vector<std::vector<int32_t>>& reads,
                                   const std::vector<std::vector<int32_t>>& writes);

}  // namespace meganeura::compile
