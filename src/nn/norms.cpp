// Normalisation layers, written as the formulas (the optimizer fuses them).
#include "meganeura/nn.h"

namespace meganeura::nn {

RmsNorm::RmsNorm(Graph& graph, const std::string& prefix, int64_t dim, double epsilon)
    : weight(graph.parameter(join(prefix, "weight"), {dim}, Init::ones())), eps(epsilon) {}

Tensor RmsNorm::forward(Graph& graph, Tensor x) const {
  return x * graph.rsqrt(graph.mean(x * x, -1, true) + eps) * weight;
}

LayerNorm::LayerNorm(Graph& graph, const std::string& prefix, int64_t dim, double epsilon)
    : weight(graph.parameter(join(prefix, "weight"), {dim}, Init::ones())),
      bias(graph.parameter(join(prefix, "bias"), {dim}, Init::zeros())),
      eps(epsilon) {}

Tensor LayerNorm::forward(Graph& graph, Tensor x) const {
  const Tensor centered = x - graph.mean(x, -1, true);
  return centered * graph.rsqrt(graph.mean(centered * centered, -1, true) + eps) * weight + bias;
}

GroupNorm::GroupNorm(Graph& graph, const std::string& prefix, int64_t group_count, int64_t channels, double epsilon)
    : weight(graph.parameter(join(prefix, "weight"), {channels}, Init::ones())),
      bias(graph.parameter(join(prefix, "bias"), {channels}, Init::zeros())),
      groups(group_count),
      eps(epsilon) {
  if (groups <= 0 || channels % groups != 0)
    throw Error("GroupNorm \"" + prefix + "\": " + std::to_string(groups) + " groups do not divide " +
                std::to_string(channels) + " channels evenly");
}

Tensor GroupNorm::forward(Graph& graph, Tensor x) const {
  if (x.rank() < 2 || x.dim(1) != weight.dim(0))
    throw Error("GroupNorm: input " + format_shape(x.shape()) + " must be [N, " + std::to_string(weight.dim(0)) +
                ", ...]");
  const Tensor grouped = graph.reshape(x, {x.dim(0), groups, -1});
  const Tensor centered = grouped - graph.mean(grouped, -1, true);
  const Tensor normalized = centered * graph.rsqrt(graph.mean(centered * centered, -1, true) + eps);
  Shape per_channel(x.shape().size() - 1, 1);  // [C, 1, ..., 1]: broadcasts over positions
  per_channel[0] = weight.dim(0);
  return graph.reshape(normalized, x.shape()) * graph.reshape(weight, per_channel) + graph.reshape(bias, per_channel);
}

}  // namespace meganeura::nn
