// SmolLM2 layers, the training / logits / decoding graphs built from them, and checkpoint loading.
#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"

namespace meganeura::models {
namespace {

const std::string kEmbedding = "model.embed_tokens.weight";

std::optional<nn::Linear> make_lm_head(Graph& graph, const LlamaConfig& config) {
  if (config.tie_word_embeddings) return std::nullopt;
  return nn::Linear(graph, "lm_head", config.hidden_size, config.vocab_size, false, Init::normal(0.0, 0.02));
}

std::vector<nn::TransformerBlock> make_layers(Graph& graph, const LlamaConfig& config) {
  std::vector<nn::TransformerBlock> layers;
  layers.reserve(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    layers.emplace_back(graph, "model.layers." + std::to_string(i), config.block_config());
  return layers;
}

void check_length(const char* what, int64_t batch, int64_t length) {
  if (batch <= 0 || length <= 0)
    throw Error(std::string(what) + ": batch and length must be positive, got " + std::to_string(batch) + " and " +
                std::to_string(length));
}

WeightMapping checkpoint_mapping(const LlamaConfig& config) {
  WeightMapping mapping;
  // Older checkpoints carry the rotary frequencies as buffers; tied ones may still store lm_head.
  mapping.ignore = {"*.rotary_emb.inv_freq"};
  if (config.tie_word_embeddings) mapping.ignore.push_back("lm_head.weight");
  return mapping;
}

}  // namespace

SmolLM2::SmolLM2(Graph& graph, const LlamaConfig& c)
    : config(c),
      embed_tokens(graph, "model.embed_tokens", c.vocab_size, c.hidden_size, Init::normal(0.0, 0.02)),
      layers(make_layers(graph, c)),
      norm(graph, "model.norm", c.hidden_size, c.rms_norm_eps),
      lm_head_linear(make_lm_head(graph, c)) {}

Tensor SmolLM2::lm_head(Graph& graph, Tensor hidden) const {
  if (lm_head_linear) return lm_head_linear->forward(graph, hidden);
  return graph.matmul(hidden, embed_tokens.weight, false, /*transpose_b=*/true);
}

Tensor SmolLM2::forward(Graph& graph, Tensor ids) const {
  Tensor h = embed_tokens.forward(graph, ids);
  for (const auto& layer : layers) h = layer.forward(graph, h);
  return lm_head(graph, norm.forward(graph, h));
}

Tensor SmolLM2::forward_cached(Graph& graph, Tensor ids, std::vector<nn::KvCache>& caches, Tensor offset) const {
  return forward_cached_embeddings(graph, embed_tokens.forward(graph, ids), caches, offset);
}

Tensor SmolLM2::forward_cached_embeddings(Graph& graph, Tensor embeddings, std::vector<nn::KvCache>& caches,
                                          Tensor offset) const {
  if (caches.size() != layers.size())
    throw Error("SmolLM2::forward_cached: " + std::to_string(caches.size()) + " KV caches given for " +
                std::to_string(layers.size()) + " layers; pass one per layer");
  Tensor h = embeddings;
  for (size_t i = 0; i < layers.size(); ++i) h = layers[i].forward_cached(graph, h, caches[i], offset);
  return norm.forward(graph, h);
}

Graph logits_graph(const LlamaConfig& config, int64_t batch, int64_t length) {
  check_length("logits_graph", batch, length);
  Graph graph;
  const SmolLM2 model(graph, config);
  graph.set_outputs({model.forward(graph, graph.input("input_ids", {batch, length}, DType::i32))});
  return graph;
}

Graph training_graph(const LlamaConfig& config, int64_t batch, int64_t length, int64_t ignore_index) {
  check_length("training_graph", batch, length);
  Graph graph;
  const SmolLM2 model(graph, config);
  const Tensor ids = graph.input("input_ids", {batch, length}, DType::i32);
  const Tensor labels = graph.input("labels", {batch, length}, DType::i32);
  const Tensor logits = graph.reshape(model.forward(graph, ids), {batch * length, config.vocab_size});
  graph.set_outputs({graph.cross_entropy_loss(logits, graph.reshape(labels, {batch * length}), ignore_index)});
  return graph;
}

std::vector<int32_t> next_token_labels(std::span<const int32_t> ids, int64_t batch, int64_t length,
                                       int32_t ignore_index) {
  if (batch < 0 || length < 0 || static_cast<int64_t>(ids.size()) != batch * length)
    throw Error("next_token_labels: " + std::to_string(ids.size()) + " ids do not form a [" + std::to_string(batch) +
                ", " + std::to_string(length) + "] batch");
  std::vector<int32_t> labels(ids.size(), ignore_index);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s + 1 < length; ++s)
      labels[static_cast<size_t>(b * length + s)] = ids[static_cast<size_t>(b * length + s + 1)];
  return labels;
}

Graph decoding_graph(const LlamaConfig& config, int64_t length, int64_t max_positions, bool all_logits,
                     const TokenEmbedder& embed) {
  check_length("decoding_graph", 1, length);
  if (max_positions < length)
    throw Error("decoding_graph: a KV cache of " + std::to_string(max_positions) + " positions cannot hold " +
                std::to_string(length) + " tokens; raise max_positions");
  Graph graph;
  const SmolLM2 model(graph, config);
  std::vector<nn::KvCache> caches;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const Shape cache_shape{1, config.num_key_value_heads, max_positions, config.head_dim};
    caches.push_back({graph.input("cache_k." + std::to_string(i), cache_shape),
                      graph.input("cache_v." + std::to_string(i), cache_shape)});
  }
  const Tensor ids = graph.input("input_ids", {1, length}, DType::i32);
  const Tensor offset = graph.input("offset", {1}, DType::i32);
  const Tensor last = graph.input("last", {1}, DType::i32);
  const Tensor logit_bias = graph.input("logit_bias", {config.vocab_size});
  const Tensor inv_temperature = graph.input("inv_temperature", {1});
  const Tensor top_k = graph.input("top_k", {1}, DType::i32);
  const Tensor top_p = graph.input("top_p", {1});
  const Tensor sample_noise = graph.input("sample_noise", {config.vocab_size});

  // Row `last` is gathered like an embedding lookup, so padded prompts (length buckets) pick the
  // real last position without a graph per prompt length. With one row of logits wanted, the last
  // layer takes only that row past its attention (the rows are independent from there on: its
  // keys and values still come from every row), and the final norm and the head see one row.
  Tensor h = embed ? embed(graph, model, ids) : model.embed_tokens.forward(graph, ids);
  const bool one_row = !all_logits && length > 1 && !model.layers.empty();
  for (size_t i = 0; i < model.layers.size(); ++i) {
    h = one_row && i + 1 == model.layers.size() ? model.layers[i].forward_cached_row(graph, h, caches[i], offset, last)
                                                : model.layers[i].forward_cached(graph, h, caches[i], offset);
  }
  Tensor logits, chosen_row;
  if (all_logits) {
    logits = model.lm_head(graph, model.norm.forward(graph, h));
    chosen_row = graph.embedding(graph.reshape(logits, {length, config.vocab_size}), last);
  } else {
    const Tensor row = one_row ? graph.reshape(h, {1, config.hidden_size})
                               : graph.embedding(graph.reshape(h, {length, config.hidden_size}), last);
    chosen_row = model.lm_head(graph, model.norm.forward(graph, row));
    logits = chosen_row;
  }
  // The filter sees the scaled logits, so top-p weighs softmax(logits / T) as transformers does;
  // the noise comes after it, so only the filter's survivors compete.
  const Tensor scaled = chosen_row * inv_temperature + logit_bias;
  const Tensor next_token = graph.argmax(scaled + graph.top_k_top_p_mask(scaled, top_k, top_p) + sample_noise, -1);
  std::vector<Tensor> outputs{next_token, logits};
  for (const auto& cache : caches) outputs.insert(outputs.end(), {cache.k, cache.v});
  graph.set_outputs(outputs);
  return graph;
}

int64_t prefill_bucket(int64_t length, int64_t max_positions) {
  if (length <= 0 || length > max_positions)
    throw Error("a prompt of " + std::to_string(length) + " tokens does not fit a KV cache of " +
                std::to_string(max_positions) + " positions");
  int64_t bucket = 16;
  while (bucket < length) bucket *= 2;
  return std::min(bucket, max_positions);
}

SmolLM2Checkpoint::SmolLM2Checkpoint(LlamaConfig config, std::map<std::string, std::vector<float>> weights,
                                     std::string directory)
    : config_(std::move(config)), weights_(std::move(weights)), directory_(std::move(directory)) {}

SmolLM2Checkpoint SmolLM2Checkpoint::open(const std::string& directory) {
  const SafeTensorsModel model = SafeTensorsModel::open(directory);
  LlamaConfig config = LlamaConfig::load(model.directory());
  // The smallest graph has every parameter with its full shape.
  const Graph graph = logits_graph(config, 1, 1);
  auto weights = model.load(graph, checkpoint_mapping(config));
  return SmolLM2Checkpoint(std::move(config), std::move(weights), model.directory());
}

const std::string& SmolLM2Checkpoint::embedding_name() { return kEmbedding; }

void SmolLM2Checkpoint::upload(Session& session) const {
  std::string missing;
  for (const std::string& name : session.parameter_names()) {
    const auto it = weights_.find(name);
    if (it == weights_.end()) {
      missing += (missing.empty() ? "" : ", ") + name;
      continue;
    }
    session.set_parameter(name, std::span<const float>(it->second));
  }
  if (!missing.empty())
    throw Error("SmolLM2Checkpoint::upload: the checkpoint has no weights for " + missing +
                "; build the session from a graph of the same config");
}

}  // namespace meganeura::models
