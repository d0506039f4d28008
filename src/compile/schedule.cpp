#include "compile/schedule.h"

#include <algorithm>
#include <map>
#include <set>

namespace meganeura::compile {

void order_by_depth(const Graph& graph, std::vector<Group>& groups, const std::vector<int32_t>& owner) {
  const auto& nodes = graph.nodes();
  std::vector<int> group_of(nodes.size(), -1);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (int32_t id : groups[g].nodes) group_of[static_cast<size_t>(id)] = static_cast<int>(g);
  }
  std::vector<int> depth(groups.size(), 0);
  // Depth of a value: its group's, or for values no kernel computes (leaves, aliases, views) the
  // deepest of their inputs. Node ids are topological, so one pass in id order fills it in as
  // long as groups are visited before their members' consumers, which the given order ensures.
  std::vector<int> value_depth(nodes.size(), 0);
  std::vector<bool> known(nodes.size(), false);
  auto depth_of = [&](int32_t id) {
    std::vector<int32_t> stack = {id};
    while (!stack.empty()) {
      const int32_t top = stack.back();
      const size_t t = static_cast<size_t>(top);
      if (known[t]) {
        stack.pop_back();
        continue;
      }
      if (group_of[t] >= 0) {
        value_depth[t] = depth[static_cast<size_t>(group_of[t])];
        known[t] = true;
        stack.pop_back();
        continue;
      }
      bool ready = true;
      int d = 0;
      for (int32_t in : nodes[t].inputs) {
        if (!known[static_cast<size_t>(in)]) {
          stack.push_back(in);
          ready = false;
        } else {
          d = std::max(d, value_depth[static_cast<size_t>(in)]);
        }
      }
      if (ready) {
        value_depth[t] = d;
        known[t] = true;
        stack.pop_back();
      }
    }
    return value_depth[static_cast<size_t>(id)];
  };
  std::map<int32_t, int> old_cache_readers;  // cache → deepest group reading its previous contents
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::set<int32_t> members(groups[g].nodes.begin(), groups[g].nodes.end());
    std::vector<int32_t> raw_reads;  // graph inputs read (a cache's contents before its write)
    int d = 0;
    for (int32_t id : groups[g].nodes) {
      const Node& node = nodes[static_cast<size_t>(id)];
      for (int32_t in : node.inputs) {
        if (members.count(in)) continue;
        const bool raw = nodes[static_cast<size_t>(in)].op == Op::input;
        if (node.op == Op::kv_cache_write && in == node.inputs[0] && raw) continue;  // written in place, not read
        d = std::max(d, depth_of(in));
        if (raw) raw_reads.push_back(in);
      }
    }
    depth[g] = d + 1;
    for (int32_t id : groups[g].nodes) {
      const Node& node = nodes[static_cast<size_t>(id)];
      if (node.op != Op::kv_cache_write) continue;
      const auto readers = old_cache_readers.find(owner[static_cast<size_t>(node.inputs[0])]);
      if (readers != old_cache_readers.end()) depth[g] = std::max(depth[g], readers->second + 1);
    }
    for (int32_t in : raw_reads) {
      int& reader = old_cache_readers[in];
      reader = std::max(reader, depth[g]);
    }
  }
  std::vector<size_t> order(groups.size());
  for (size_t g = 0; g < order.size(); ++g) order[g] = g;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return depth[a] < depth[b]; });
  std::vector<Group> sorted;
  sorted.reserve(groups.size());
  for (size_t g : order) sorted.push_back(std::move(groups[g]));
  groups = std::move(sorted);
}

std::vector<IndependentRun> independent_runs(const std::vector<std::vector<int32_t>>& reads,
                                   const std::vector<std::vector<int32_t>>& writes) {
  const int count = static_cast<int>(reads.size());
  std::vector<IndependentRun> runs(static_cast<size_t>(count));
  std::set<int32_t> written, read;  // by the current run's kernels
  int first = 0;
  auto close = [&](int end) {
    for (int k = first; k < end; ++k) runs[static_cast<size_t>(k)] = {first, end - 1};
    first = end;
    written.clear();
    read.clear();
  };
  for (int k = 0; k < count; ++k) {
    const auto& in = reads[static_cast<size_t>(k)];
    const auto& out = writes[static_cast<size_t>(k)];
    const bool depends = std::any_of(in.begin(), in.end(), [&](int32_t v) { return written.count(v) > 0; }) ||
                         std::any_of(out.begin(), out.end(), [&](int32_t v) { return written.count(v) || read.count(v); });
    if (depends) close(k);
    written.insert(out.begin(), out.end());
    read.insert(in.begin(), in.end());
  }
  close(count);
  return runs;
}

}  // namespace meganeura::compile

