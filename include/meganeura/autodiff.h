// meganeura/autodiff.h — reverse-mode differentiation of a graph.
//
//   meganeura::Graph g;
//   auto x = g.input("x", {8, 4});
//   auto w = g.parameter("fc.weight", {3, 4}, meganeura::Init::kaiming());
//   auto frozen = g.parameter("frozen", {3}, meganeura::Init::ones(), /*trainable=*/false);
//   g.set_outputs({g.mean_all(g.matmul(x, w, false, true) + frozen)});
//
//   meganeura::GradientGraph d = meganeura::differentiate(g);
//   int32_t dw = d.gradients.at("fc.weight");    // node "grad/fc.weight", shape [3, 4]
//   // d.graph's outputs: the forward outputs (loss first), then one gradient per trainable
//   // parameter, in parameter creation order (d.parameters lists their names).
//
// The loss is the forward graph's first output and must be a float scalar (shape [] or [1]).
// Gradients flow through every op of the table that has a rule (see gradient_support) and stop at
// stop_gradient, at integer tensors (ids, labels, offsets, casts to or from integers) and at argmax
// and greater (see gradient_support for the other unsupported ops). Fan-out adds the
// contributions; broadcasting is undone by summing over the broadcast axes. A trainable parameter
// the loss does not depend on gets a zero gradient and is listed in `unreached`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "meganeura/graph.h"

namespace meganeura {

struct GradientGraph {
  // The forward nodes (same ids as the input graph) followed by the backward pass.
  Graph graph;
  // Trainable float parameters in creation order, then the inputs asked for; each has a gradient
  // output.
  std::vector<std::string> parameters;
  // Parameter name → id (in `graph`) of the node holding its gradient, named gradient_name(name).
  std::map<std::string, int32_t> gradients;
  // Trainable parameters the loss does not depend on; their gradient is all zeros.
  std::vector<std::string> unreached;
};

struct DifferentiateOptions {
  // Float inputs that also get a gradient (saliency maps, adversarial examples, gradient checks):
  // each is listed in GradientGraph::parameters and gradients like a parameter, after them.
  std::vector<std::string> inputs;
};

// Appends the backward pass of `forward`'s first output (the loss). Throws Error when the graph has
// no outputs, when the loss is not a float scalar, when options.inputs names no float input, or
// when a gradient must flow through an op that has no rule for that operand (the message names
// the op and suggests stop_gradient).
GradientGraph differentiate(const Graph& forward, const DifferentiateOptions& options = {});

// "grad/<parameter name>": the name of a parameter's gradient node.
std::string gradient_name(const std::string& parameter_name);

// How the gradient table treats an op: leaves start or end the backward pass, `rule` ops have an
// entry, `not_differentiable` ops are marked explicitly. Among those, ops whose derivative is zero
// wherever it exists (greater, argmax, stop_gradient) simply carry no gradient; the others (KV-cache
// writes, the backward ops, i.e. second derivatives) make differentiate() throw when a gradient
// would have to flow through them, rather than drop it silently. `missing` means the table has no
// entry yet: a coverage test fails on it.
enum class GradientSupport { leaf, rule, not_differentiable, missing };
GradientSupport gradient_support(Op op);
bool has_zero_derivative(Op op);  // greater, argmax, stop_gradient

}  // namespace meganeura
