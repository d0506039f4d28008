// Names and the primitive-op forms of the activations and softmax that the layers share.
#include "meganeura/nn.h"

namespace meganeura::nn {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

Tensor silu(Graph& graph, Tensor x) { return x * graph.sigmoid(x); }

Tensor gelu_tanh(Graph& graph, Tensor x) {
  const double sqrt_2_over_pi = 0.7978845608028654;
  return (0.5 * x) * (1.0 + graph.tanh(sqrt_2_over_pi * (x + 0.044715 * graph.pow(x, 3.0))));
}

Tensor softmax(Graph& graph, Tensor x, int64_t axis) {
  const Tensor e = graph.exp(x - graph.max(x, axis, true));
  return e * graph.recip(graph.sum(e, axis, true));
}

}  // namespace meganeura::nn
