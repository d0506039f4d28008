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

}  // namespace meganeura::compile
