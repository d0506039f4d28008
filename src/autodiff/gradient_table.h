// The gradient table's interface: one rule per op, used by differentiate().
#pragma once

#include <optional>
#include <vector>

#include "meganeura/autodiff.h"
#include "meganeura/graph.h"

namespace meganeura::autodiff {

// Everything a rule sees about one forward node. `node` is a copy: the graph grows while rules
// run, which would invalidate references into it.
struct GradientContext {
  Graph& graph;
  Node node;
  Tensor out;                  // the forward node itself
  std::vector<Tensor> inputs;  // its operands
  Tensor grad;                 // d loss / d out, shape of out
  std::vector<bool> wanted;    // which operands need a gradient (a rule may skip the others)
};

// d loss / d operand for each operand (nullopt: no gradient). A returned gradient may have the
// broadcast shape of the operation; differentiate() sums it back to the operand's shape.
std::vector<std::optional<Tensor>> gradient_rule(const GradientContext& context);

// Sums `g` over the axes along which `shape` was broadcast to reach g's shape.
Tensor reduce_to_shape(Graph& graph, Tensor g, const Shape& shape);

}  // namespace meganeura::autodiff
