// Layers that own a weight matrix or table: Linear, Embedding, Conv2d.
#include <cmath>

#include "meganeura/nn.h"

namespace meganeura::nn {

namespace {

void require_positive(const char* layer, const std::string& prefix, std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes)
    if (s <= 0)
      throw Error(std::string(layer) + " \"" + prefix + "\": sizes must be positive, got " + std::to_string(s));
}

}  // namespace

Linear::Linear(Graph& graph, const std::string& prefix, int64_t in_features, int64_t out_features, bool with_bias,
               std::optional<Init> weight_init) {
  require_positive("Linear", prefix, {in_features, out_features});
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  const Init default_init = Init::uniform(-bound, bound);
  weight = graph.parameter(join(prefix, "weight"), {out_features, in_features}, weight_init.value_or(default_init));
  if (with_bias)
    bias = graph.parameter(join(prefix, "bias"), {out_features}, weight_init ? Init::zeros() : default_init);
}

Tensor Linear::forward(Graph& graph, Tensor x) const {
  Tensor y = graph.matmul(x, weight, false, /*transpose_b=*/true);
  return bias ? y + *bias : y;
}

Embedding::Embedding(Graph& graph, const std::string& prefix, int64_t num_embeddings, int64_t dim, Init init) {
  require_positive("Embedding", prefix, {num_embeddings, dim});
  weight = graph.parameter(join(prefix, "weight"), {num_embeddings, dim}, init);
}

Tensor Embedding::forward(Graph& graph, Tensor ids) const { return graph.embedding(weight, ids); }

Conv2d::Conv2d(Graph& graph, const std::string& prefix, int64_t in_channels, int64_t out_channels,
               std::array<int64_t, 2> kernel, Conv2dOptions conv_options, bool with_bias)
    : options(conv_options) {
  require_positive("Conv2d", prefix, {in_channels, out_channels, kernel[0], kernel[1], options.groups});
  if (in_channels % options.groups != 0 || out_channels % options.groups != 0)
    throw Error("Conv2d \"" + prefix + "\": groups (" + std::to_string(options.groups) +
                ") must divide both the input channels (" + std::to_string(in_channels) + ") and the output channels (" +
                std::to_string(out_channels) + ")");
  const int64_t fan_in = in_channels / options.groups * kernel[0] * kernel[1];
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight = graph.parameter(join(prefix, "weight"), {out_channels, in_channels / options.groups, kernel[0], kernel[1]},
                           Init::uniform(-bound, bound));
  if (with_bias) bias = graph.parameter(join(prefix, "bias"), {out_channels}, Init::uniform(-bound, bound));
}

Tensor Conv2d::forward(Graph& graph, Tensor x) const {
  Tensor y = graph.conv2d(x, weight, options);
  if (!bias) return y;
  return y + graph.reshape(*bias, {bias->dim(0), 1, 1});
}

}  // namespace meganeura::nn
