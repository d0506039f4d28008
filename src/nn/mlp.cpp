// Feed-forward blocks: Llama's SwiGLU MLP and the ViT/SigLIP GELU MLP.
#include "meganeura/nn.h"

namespace meganeura::nn {

SwiGluMlp::SwiGluMlp(Graph& graph, const std::string& prefix, int64_t hidden, int64_t intermediate)
    : gate_proj(graph, join(prefix, "gate_proj"), hidden, intermediate),
      up_proj(graph, join(prefix, "up_proj"), hidden, intermediate),
      down_proj(graph, join(prefix, "down_proj"), intermediate, hidden) {}

Tensor SwiGluMlp::forward(Graph& graph, Tensor x) const {
  return down_proj.forward(graph, silu(graph, gate_proj.forward(graph, x)) * up_proj.forward(graph, x));
}

GeluMlp::GeluMlp(Graph& graph, const std::string& prefix, int64_t hidden, int64_t intermediate, bool tanh, bool bias)
    : fc1(graph, join(prefix, "fc1"), hidden, intermediate, bias),
      fc2(graph, join(prefix, "fc2"), intermediate, hidden, bias),
      tanh_approximation(tanh) {}

Tensor GeluMlp::forward(Graph& graph, Tensor x) const {
  const Tensor h = fc1.forward(graph, x);
  return fc2.forward(graph, tanh_approximation ? gelu_tanh(graph, h) : graph.gelu(h));
}

}  // namespace meganeura::nn
