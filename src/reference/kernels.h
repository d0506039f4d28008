// The reference's per-category evaluators. Each takes the node and its inputs' shapes and values
// and returns the node's value, row-major.
#pragma once

#include <vector>

#include "meganeura/graph.h"
#include "meganeura/reference.h"

namespace meganeura::reference {

struct Arg {
  const Shape& shape;
  DType dtype;
  const std::vector<double>& v;
};
using Args = std::vector<Arg>;

std::vector<double> eval_pointwise(const Node& node, const Args& in, const Options& options);
std::vector<double> eval_reduction(const Node& node, const Args& in);
std::vector<double> eval_movement(const Node& node, const Args& in);
std::vector<double> eval_matmul(const Node& node, const Args& in);
std::vector<double> eval_attention(const Node& node, const Args& in);
std::vector<double> eval_conv(const Node& node, const Args& in);
std::vector<double> eval_nn(const Node& node, const Args& in);
std::vector<double> eval_loss(const Node& node, const Args& in);

// Offset into a tensor of shape `in` for the element at multi-index `index` of the broadcast
// output shape `out` (NumPy rules: dims of size 1 repeat, missing leading dims are added).
int64_t broadcast_offset(const Shape& in, const Shape& out, const std::vector<int64_t>& index);

// Advances a row-major multi-index over `shape`; false after the last element.
bool next_index(std::vector<int64_t>& index, const Shape& shape);

// Product of dims [begin, end).
int64_t span(const Shape& shape, size_t begin, size_t end);

// A single i32 value ([] or [1]) as an integer.
int64_t index_scalar(const Arg& arg);

}  // namespace meganeura::reference
