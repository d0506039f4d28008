// SmolVLM2 vision encoder and connector, the graphs that merge image features into the text
// model's input, and checkpoint loading.
#include <algorithm>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"

namespace meganeura::models {
namespace {

const std::string kVision = "model.vision_model";
const std::string kConnector = "model.connector.modality_projection.proj";

bool is_vision_parameter(const std::string& name) {
  return name.starts_with(kVision + ".") || name.starts_with("model.connector.");
}

std::vector<SmolVlmVision::EncoderLayer> make_encoder_layers(Graph& graph, const SmolVlmVisionConfig& v) {
  std::vector<SmolVlmVision::EncoderLayer> layers;
  layers.reserve(static_cast<size_t>(v.num_hidden_layers));
  nn::AttentionConfig attention;
  attention.hidden = v.hidden_size;
  attention.num_heads = v.num_attention_heads;
  attention.causal = false;
  attention.bias = true;
  attention.output_name = "out_proj";
  for (int64_t i = 0; i < v.num_hidden_layers; ++i) {
    const std::string prefix = kVision + ".encoder.layers." + std::to_string(i);
    layers.push_back({nn::LayerNorm(graph, prefix + ".layer_norm1", v.hidden_size, v.layer_norm_eps),
                      nn::MultiHeadAttention(graph, prefix + ".self_attn", attention),
                      nn::LayerNorm(graph, prefix + ".layer_norm2", v.hidden_size, v.layer_norm_eps),
                      nn::GeluMlp(graph, prefix + ".mlp", v.hidden_size, v.intermediate_size, v.gelu_tanh)});
  }
  return layers;
}

Conv2dOptions patch_stride(int64_t patch) {
  Conv2dOptions options;
  options.stride = {patch, patch};
  return options;
}

void check_images(const char* what, int64_t images) {
  if (images <= 0) throw Error(std::string(what) + ": at least one image is needed, got " + std::to_string(images));
}

WeightMapping checkpoint_mapping(const SmolVlmConfig& config) {
  WeightMapping mapping;
  mapping.rename = {{"model.text_model.", "model."}};
  mapping.ignore = {"*.rotary_emb.inv_freq"};
  if (config.text.tie_word_embeddings) mapping.ignore.push_back("lm_head.weight");
  return mapping;
}

}  // namespace

SmolVlmVision::SmolVlmVision(Graph& graph, const SmolVlmConfig& c)
    : config(c),
      patch_embedding(graph, kVision + ".embeddings.patch_embedding", c.vision.num_channels, c.vision.hidden_size,
                      {c.vision.patch_size, c.vision.patch_size}, patch_stride(c.vision.patch_size)),
      position_embedding(graph, kVision + ".embeddings.position_embedding",
                         c.vision.patches_per_side() * c.vision.patches_per_side(), c.vision.hidden_size),
      layers(make_encoder_layers(graph, c.vision)),
      post_layernorm(graph, kVision + ".post_layernorm", c.vision.hidden_size, c.vision.layer_norm_eps),
      modality_projection(graph, kConnector, c.vision.hidden_size * c.scale_factor * c.scale_factor, c.text.hidden_size,
                          false, Init::normal(0.0, 0.02)) {}

Tensor SmolVlmVision::encode(Graph& graph, Tensor pixel_values) const {
  const SmolVlmVisionConfig& v = config.vision;
  const Shape expected{pixel_values.rank() == 4 ? pixel_values.dim(0) : -1, v.num_channels, v.image_size, v.image_size};
  if (pixel_values.shape() != expected)
    throw Error("SmolVlmVision: pixel_values must be [images, " + std::to_string(v.num_channels) + ", " +
                std::to_string(v.image_size) + ", " + std::to_string(v.image_size) +
                "] (the image processor's output, one image per row)");
  const int64_t images = pixel_values.dim(0);
  const int64_t patches = v.patches_per_side() * v.patches_per_side();
  // [images, hidden, side, side] → [images, patches, hidden], patches row-major over the grid.
  Tensor h = graph.reshape(patch_embedding.forward(graph, pixel_values), {images, v.hidden_size, patches});
  h = graph.transpose(h, 1, 2);
  // A full image (no padded patches) has position ids 0..patches-1, so the table is added whole.
  h = h + position_embedding.weight;
  for (const EncoderLayer& layer : layers) {
    h = h + layer.self_attn.forward(graph, layer.layer_norm1.forward(graph, h));
    h = h + layer.mlp.forward(graph, layer.layer_norm2.forward(graph, h));
  }
  return post_layernorm.forward(graph, h);
}

Tensor SmolVlmVision::forward(Graph& graph, Tensor pixel_values) const {
  const Tensor shuffled = pixel_shuffle(graph, encode(graph, pixel_values), config.scale_factor);
  return modality_projection.forward(graph, graph.reshape(shuffled, {-1, shuffled.dim(-1)}));
}

Tensor pixel_shuffle(Graph& graph, Tensor encoded, int64_t scale) {
  const int64_t patches = encoded.rank() == 3 ? encoded.dim(1) : 0;
  int64_t side = 0;
  while (side * side < patches) ++side;
  if (encoded.rank() != 3 || side * side != patches || scale <= 0 || side % scale != 0)
    throw Error("pixel_shuffle: expects [images, side², dim] with side a multiple of the scale " + std::to_string(scale) +
                "; got " + (encoded.rank() == 3 ? std::to_string(patches) + " patches" : "a tensor of rank " +
                                                                                              std::to_string(encoded.rank())));
  const int64_t images = encoded.dim(0), d = encoded.dim(2), s = scale;
  // Output token (i, j) of the (side/s)² grid holds the s×s block of patches (i·s + r, j·s + q),
  // channels ordered (r, q, feature): transformers' two view/permute rounds in one permute.
  Tensor grid = graph.reshape(encoded, {images, side / s, s, side / s, s, d});
  grid = graph.permute(grid, {0, 1, 3, 2, 4, 5});
  return graph.reshape(grid, {images, (side / s) * (side / s), s * s * d});
}

Graph image_features_graph(const SmolVlmConfig& config, int64_t images) {
  check_images("image_features_graph", images);
  Graph graph;
  const SmolVlmVision vision(graph, config);
  const SmolVlmVisionConfig& v = config.vision;
  graph.set_outputs(
      {vision.forward(graph, graph.input("pixel_values", {images, v.num_channels, v.image_size, v.image_size}))});
  return graph;
}

Graph vlm_decoding_graph(const SmolVlmConfig& config, int64_t images, int64_t length, int64_t max_positions,
                         bool all_logits) {
  check_images("vlm_decoding_graph", images);
  // Image features are appended below the token embeddings and gathered into place by
  // merge_index, so one graph serves any prompt of this length and image count.
  const TokenEmbedder embed = [&config, images, length](Graph& graph, const SmolLM2& text, Tensor ids) {
    const SmolVlmVision vision(graph, config);
    const SmolVlmVisionConfig& v = config.vision;
    const Tensor pixels = graph.input("pixel_values", {images, v.num_channels, v.image_size, v.image_size});
    const Tensor merge_index = graph.input("merge_index", {length}, DType::i32);
    const Tensor tokens = graph.reshape(text.embed_tokens.forward(graph, ids), {length, config.text.hidden_size});
    const Tensor table = graph.concat({tokens, vision.forward(graph, pixels)}, 0);
    return graph.reshape(graph.embedding(table, merge_index), {1, length, config.text.hidden_size});
  };
  return decoding_graph(config.text, length, max_positions, all_logits, embed);
}

std::vector<int32_t> image_merge_index(const SmolVlmConfig& config, std::span<const int32_t> ids, int64_t images,
                                       int64_t length) {
  if (static_cast<int64_t>(ids.size()) > length)
    throw Error("image_merge_index: " + std::to_string(ids.size()) + " ids do not fit a graph of " +
                std::to_string(length) + " positions");
  const int64_t expected = images * config.image_tokens();
  const auto found = std::count(ids.begin(), ids.end(), config.image_token_id);
  if (found != expected)
    throw Error("the prompt holds " + std::to_string(found) + " image tokens (id " + std::to_string(config.image_token_id) +
                ") but " + std::to_string(images) + " image(s) give " + std::to_string(expected) + " (" +
                std::to_string(config.image_tokens()) + " each); expand the prompt with the image processor");
  std::vector<int32_t> index(static_cast<size_t>(length));
  int32_t next_feature = static_cast<int32_t>(length);
  for (int64_t i = 0; i < length; ++i) {
    const bool image = i < static_cast<int64_t>(ids.size()) && ids[static_cast<size_t>(i)] == config.image_token_id;
    index[static_cast<size_t>(i)] = image ? next_feature++ : static_cast<int32_t>(i);
  }
  return index;
}

std::vector<float> drop_padding_images(std::span<const float> pixel_values, int64_t& images, int64_t image_elements) {
  if (images <= 0 || image_elements <= 0 || static_cast<int64_t>(pixel_values.size()) != images * image_elements)
    throw Error("pixel_values: " + std::to_string(pixel_values.size()) + " values are not " + std::to_string(images) +
                " images of " + std::to_string(image_elements) + " values");
  std::vector<float> kept;
  int64_t count = 0;
  for (int64_t i = 0; i < images; ++i) {
    const auto image = pixel_values.subspan(static_cast<size_t>(i * image_elements), static_cast<size_t>(image_elements));
    if (std::all_of(image.begin(), image.end(), [](float x) { return x == 0.0f; })) continue;
    kept.insert(kept.end(), image.begin(), image.end());
    ++count;
  }
  if (count == 0) {
    kept.assign(pixel_values.begin(), pixel_values.begin() + image_elements);
    count = 1;
  }
  images = count;
  return kept;
}

SmolVlmCheckpoint::SmolVlmCheckpoint(SmolVlmConfig config, std::map<std::string, std::vector<float>> weights,
                                     std::string directory)
    : config_(std::move(config)), directory_(std::move(directory)) {
  std::map<std::string, std::vector<float>> text;
  for (auto& [name, values] : weights) (is_vision_parameter(name) ? vision_ : text)[name] = std::move(values);
  text_ = std::make_unique<SmolLM2Checkpoint>(config_.text, std::move(text), directory_);
}

SmolVlmCheckpoint SmolVlmCheckpoint::open(const std::string& directory) {
  const SafeTensorsModel model = SafeTensorsModel::open(directory);
  SmolVlmConfig config = SmolVlmConfig::load(model.directory());
  // The smallest graph has every parameter with its full shape.
  const Graph graph = vlm_decoding_graph(config, 1, 1 + config.image_tokens(), 1 + config.image_tokens());
  auto weights = model.load(graph, checkpoint_mapping(config));
  return SmolVlmCheckpoint(std::move(config), std::move(weights), model.directory());
}

void SmolVlmCheckpoint::upload_vision(Session& session) const {
  for (const auto& [name, values] : vision_) session.set_parameter(name, std::span<const float>(values));
}

void SmolVlmCheckpoint::upload(Session& session) const {
  std::string missing;
  for (const std::string& name : session.parameter_names()) {
    const auto& source = is_vision_parameter(name) ? vision_ : text_->weights();
    const auto it = source.find(name);
    if (it == source.end()) {
      missing += (missing.empty() ? "" : ", ") + name;
      continue;
    }
    session.set_parameter(name, std::span<const float>(it->second));
  }
  if (!missing.empty())
    throw Error("SmolVlmCheckpoint::upload: the checkpoint has no weights for " + missing +
                "; build the session from a graph of the same config");
}

}  // namespace meganeura::models
