// Pointwise expression trees as GLSL functions: the body of pointwise kernels, the prologues of
// reductions and the epilogues of matmuls.
//
//   codegen::ExpressionWriter writer(graph, kernel);
//   std::string fn = writer.function("value", kernel.root, graph.node(kernel.root).shape);
//   // float value(uint i) { float v0 = float(in0.data[i]); ... return v3; }
//
// Nodes outside the kernel are read from their bindings (broadcast to the index shape); scalar
// nodes become literals; with `acc_node` set, that node's value is the function's `acc` argument.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "compile/plan.h"

namespace meganeura::codegen {

class ExpressionWriter {
 public:
  ExpressionWriter(const Graph& graph, const compile::Kernel& kernel);

  // With `partner_node` as well (a paired product, compile/grouping.h), that node is `acc2`.
  std::string function(const std::string& name, int32_t target, const Shape& index_shape, int32_t acc_node = -1,
                       int32_t partner_node = -1);

  // Binding slot of an input node of the kernel; Error when it is not one.
  size_t binding_of(int32_t node) const;
  // "float(in2.data[idx])" or a literal for scalar nodes.
  std::string load(int32_t node, const std::string& index) const;

 private:
  std::string value(int32_t node, std::string& body, std::map<int32_t, std::string>& names, const Shape& index_shape,
                    int32_t acc_node, int32_t partner_node) const;
  std::string op_expression(const Node& node, const std::vector<std::string>& args) const;

  const Graph& graph_;
  const compile::Kernel& kernel_;
};

}  // namespace meganeura::codegen
