#include "compile/split_sums.h"

#include <algorithm>
#include <utility>

namespace meganeura::compile {

namespace {

// Output tiles of the GEMM kernels for an M × N result (compile.cpp, op_kernels.cpp: 64-wide tiles
// for large results, narrower ones for small).
uint64_t gemm_tiles(int64_t m, int64_t n) {
  const int64_t tile = std::min(m, n) >= 64 ? 64 : (std::min(m, n) >= 32 ? 32 : 16);
  return static_cast<uint64_t>((m + tile - 1) / tile) * static_cast<uint64_t>((n + tile - 1) / tile);
}

Tensor reshaped(Graph& out, int32_t id, Shape shape) { return out.reshape(out.tensor(id), std::move(shape)); }

// conv2d_grad_weight(x, dy) as S partial products over interleaved images (see the header).
Tensor split_conv_grad_weight(Graph& out, const Node& node, const std::vector<int32_t>& inputs, int64_t parts) {
  // Copies: adding nodes moves the graph's node storage.
  const Shape x = out.node(inputs[0]).shape;
  const Shape dy = out.node(inputs[1]).shape;
  const int64_t images = x[0] / parts;
  Node grouped;
  grouped.op = Op::conv2d_grad_weight;
  grouped.attrs = node.attrs;
  grouped.attrs.groups = node.attrs.groups * parts;
  grouped.inputs = {reshaped(out, inputs[0], {images, parts * x[1], x[2], x[3]}).id,
                    reshaped(out, inputs[1], {images, parts * dy[1], dy[2], dy[3]}).id};
  const Tensor partial = out.add_node(std::move(grouped));
  Shape stacked = node.shape;
  stacked.insert(stacked.begin(), parts);
  return out.sum(out.reshape(partial, stacked), 0);
}

// matmul(a [K, M], b [K, N], transpose_a) as a batch of S products over K/S rows each, summed.
Tensor split_matmul(Graph& out, const std::vector<int32_t>& inputs, int64_t parts) {
  const Shape a = out.node(inputs[0]).shape;
  const Shape b = out.node(inputs[1]).shape;
  const int64_t rows = a[0] / parts;
  const Tensor batched = out.matmul(reshaped(out, inputs[0], {parts, rows, a[1]}),
                                    reshaped(out, inputs[1], {parts, rows, b[1]}), /*transpose_a=*/true, false);
  return out.sum(batched, 0);
}

// Parts for a node this pass splits; 1 for every other node.
int64_t parts_for(const Graph& graph, const Node& node, const SplitSumOptions& options) {
  if (node.dtype != DType::f32) return 1;
  if (node.op == Op::conv2d_grad_weight) {
    const Shape& x = graph.node(node.inputs[0]).shape;
    const Shape& dy = graph.node(node.inputs[1]).shape;
    const int64_t cout_per_group = node.shape[0] / node.attrs.groups;
    const int64_t taps = node.shape[1] * node.shape[2] * node.shape[3];
    const uint64_t tiles = gemm_tiles(cout_per_group, taps) * static_cast<uint64_t>(node.attrs.groups);
    return sum_split_parts(tiles, static_cast<uint64_t>(dy[0] * dy[2] * dy[3]), x[0], options);
  }
  if (node.op == Op::matmul && node.attrs.transpose_a && !node.attrs.transpose_b && node.shape.size() == 2) {
    const Shape& a = graph.node(node.inputs[0]).shape;
    const Shape& b = graph.node(node.inputs[1]).shape;
    if (a.size() != 2 || b.size() != 2) return 1;
    return sum_split_parts(gemm_tiles(node.shape[0], node.shape[1]), static_cast<uint64_t>(a[0]), a[0], options);
  }
  return 1;
}

}  // namespace

int64_t sum_split_parts(uint64_t tiles, uint64_t length, int64_t divisible_by, const SplitSumOptions& options) {
  int64_t parts = 1;
  while (divisible_by % (parts * 2) == 0 && tiles * static_cast<uint64_t>(parts) * 2 <= options.target_workgroups &&
         length / static_cast<uint64_t>(parts * 2) >= options.min_part_length) {
    parts *= 2;
  }
  return parts;
}

Graph split_long_sums(const Graph& graph, const SplitSumOptions& options) {
  bool any = false;
  for (const Node& node : graph.nodes()) any = any || parts_for(graph, node, options) > 1;
  if (!any) return graph;

  Graph out;
  std::vector<int32_t> remap(graph.size(), -1);
  for (size_t id = 0; id < graph.size(); ++id) {
    const Node& node = graph.node(static_cast<int32_t>(id));
    std::vector<int32_t> inputs;
    for (int32_t input : node.inputs) inputs.push_back(remap[static_cast<size_t>(input)]);
    const int64_t parts = parts_for(graph, node, options);
    if (parts == 1) {
      Node copy = node;
      copy.inputs = std::move(inputs);
      remap[id] = out.add_node(std::move(copy)).id;
      continue;
    }
    const Tensor sum = node.op == Op::conv2d_grad_weight ? split_conv_grad_weight(out, node, inputs, parts)
                                                         : split_matmul(out, inputs, parts);
    if (!node.name.empty()) out.set_name(sum, node.name);
    remap[id] = sum.id;
  }
  if (graph.has_outputs()) {
    std::vector<Tensor> outputs;
    for (int32_t id : graph.outputs()) outputs.push_back(out.tensor(remap[static_cast<size_t>(id)]));
    out.set_outputs(outputs);
  }
  return out;
}

}  // namespace meganeura::compile
