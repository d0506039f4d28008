// How a single-node kernel (attention, conv, pooling, group norm, rope) reads its node's inputs:
// bound buffers are `in<i>`, scalar leaves are inlined by compile and become literals here.
//
//   std::string q = codegen::input_buffer(kernel, node, 0);          // "in0"
//   std::string offset = codegen::int_scalar_read(graph, kernel, node, 4);  // "in3.data[0]" or "5"
#pragma once

#include <algorithm>
#include <string>

#include "compile/plan.h"
#include "meganeura/error.h"
#include "meganeura/graph.h"

namespace meganeura::codegen {

inline std::string input_buffer(const compile::Kernel& kernel, const Node& node, size_t k) {
  const auto it = std::find(kernel.inputs.begin(), kernel.inputs.end(), node.inputs[k]);
  if (it == kernel.inputs.end()) {
    throw Error(std::string("codegen: input ") + std::to_string(k) + " of " + op_name(node.op) +
                " is not bound to the kernel; it must be a tensor, not an inlined scalar");
  }
  return "in" + std::to_string(it - kernel.inputs.begin());
}

// An i32 value of shape [] or [1] (a position offset) as a GLSL int expression.
inline std::string int_scalar_read(const Graph& graph, const compile::Kernel& kernel, const Node& node, size_t k) {
  const Node& input = graph.node(node.inputs[k]);
  if (input.op == Op::scalar) return std::to_string(static_cast<int64_t>(input.attrs.value));
  return "int(" + input_buffer(kernel, node, k) + ".data[0])";
}

}  // namespace meganeura::codegen
