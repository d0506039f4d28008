// meganeura/models/smolvlm2.h — SmolVLM2 (Idefics3-style vision-language model): a SigLIP vision
// encoder, a pixel-shuffle connector and the SmolLM2 decoder, with generation on the GPU.
//
//   auto checkpoint = meganeura::models::SmolVlmCheckpoint::open_or_download("HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
//   meganeura::models::VlmGenerator generator(checkpoint);
//   // ids hold config().image_tokens() copies of image_token_id per image, where its features go;
//   // pixels are [images, 3, image_size, image_size], already normalised (the image processor's).
//   std::vector<int32_t> answer = generator.generate(ids, pixels, /*images=*/1, sampling);
//
// Graph parameters: the text model under SmolLM2's names (model.embed_tokens.weight,
// model.layers.0..., model.norm.weight, lm_head.weight), so decoding reuses SmolLM2's graphs; the
// vision encoder and connector under the Hugging Face names (model.vision_model..., model.connector...).
// Checkpoints store the text model as model.text_model...; loading renames it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meganeura/graph.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/nn.h"

namespace meganeura {
class Session;
}

namespace meganeura::models {

// "vision_config" of a SmolVLM config.json (model_type "smolvlm_vision"), GELU-tanh MLP.
struct SmolVlmVisionConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_channels = 3;
  int64_t image_size = 0;
  int64_t patch_size = 0;
  double layer_norm_eps = 1e-6;
  bool gelu_tanh = true;  // "gelu_pytorch_tanh" (or "gelu_new"); false: "gelu", the erf form

  int64_t patches_per_side() const { return image_size / patch_size; }
};

// A SmolVLM config.json (model_type "smolvlm"): the vision config, the text config (a Llama one,
// read by LlamaConfig) and the connector. Fields left out take transformers' defaults (checkpoints
// store only what differs); the top-level tie_word_embeddings decides the lm_head. Anything the
// graphs cannot honour is an Error naming the field.
struct SmolVlmConfig {
  SmolVlmVisionConfig vision;
  LlamaConfig text;
  int64_t scale_factor = 2;
  int32_t image_token_id = 0;

  // Tokens one image becomes: (patches per side / scale_factor)².
  int64_t image_tokens() const;

  static SmolVlmConfig from_json(std::string_view json_text, const std::string& label = "config.json");
  // config.json, or a folder holding one; eos_token_id from generation_config.json beside it
  // when that file gives one (generation stops there, as transformers' generate does).
  static SmolVlmConfig load(const std::string& path);
  // Whether a config.json text describes a SmolVLM model ("model_type" "smolvlm" or idefics3, or a
  // "vision_config"); false for anything else, unreadable text included.
  static bool describes_vlm(std::string_view json_text);
};

// The vision encoder and connector, created in a graph under the Hugging Face names.
struct SmolVlmVision {
  SmolVlmVision(Graph& graph, const SmolVlmConfig& config);

  // pixel_values [images, channels, image_size, image_size] → image features
  // [images · image_tokens, text hidden], image by image, each in row-major patch-grid order.
  Tensor forward(Graph& graph, Tensor pixel_values) const;
  // The encoder alone: [images, patches, vision hidden] after the post LayerNorm.
  Tensor encode(Graph& graph, Tensor pixel_values) const;

  struct EncoderLayer {
    nn::LayerNorm layer_norm1;
    nn::MultiHeadAttention self_attn;
    nn::LayerNorm layer_norm2;
    nn::GeluMlp mlp;
  };

  SmolVlmConfig config;
  nn::Conv2d patch_embedding;
  nn::Embedding position_embedding;
  std::vector<EncoderLayer> layers;
  nn::LayerNorm post_layernorm;
  nn::Linear modality_projection;
};

// transformers' SmolVLM connector pixel shuffle: [images, side², dim] (patches row-major) →
// [images, (side/scale)², scale²·dim], each token the scale × scale block of patches under it.
Tensor pixel_shuffle(Graph& graph, Tensor encoded, int64_t scale);

// ---- graphs ------------------------------------------------------------------------------------

// inputs "pixel_values" f32 [images, channels, image_size, image_size]; outputs {features
// [images · image_tokens, text hidden]}.
Graph image_features_graph(const SmolVlmConfig& config, int64_t images);

// decoding_graph (models/smollm2.h) whose prompt embeddings carry images: beside its inputs,
// "pixel_values" f32 [images, channels, image_size, image_size] and "merge_index" i32 [length]
// (image_merge_index: row i of the first layer's input is the token embedding of row i, or image
// feature k where merge_index[i] = length + k).
Graph vlm_decoding_graph(const SmolVlmConfig& config, int64_t images, int64_t length, int64_t max_positions,
                         bool all_logits = false);

// merge_index for ids (padded with zeros to `length`): the k-th image token takes image feature
// k, in order, as transformers' inputs merger does. Error unless the ids hold exactly
// images · image_tokens image tokens.
std::vector<int32_t> image_merge_index(const SmolVlmConfig& config, std::span<const int32_t> ids, int64_t images,
                                       int64_t length);

// transformers drops all-zero images (batch padding) before the vision encoder, keeping one when
// all are zero. pixel_values holds `images` images of image_elements values each; returns the kept
// values, and sets `images` to how many were kept.
std::vector<float> drop_padding_images(std::span<const float> pixel_values, int64_t& images, int64_t image_elements);

// ---- checkpoints ---------------------------------------------------------------------------------

class SmolVlmCheckpoint {
 public:
  static SmolVlmCheckpoint open(const std::string& directory);
  static SmolVlmCheckpoint download(const std::string& repo_id, const std::string& revision = "main");
  static SmolVlmCheckpoint open_or_download(const std::string& directory_or_repo_id);
  // Weights already in memory, under the graphs' names (random ones for benchmarks).
  SmolVlmCheckpoint(SmolVlmConfig config, std::map<std::string, std::vector<float>> weights, std::string directory = {});

  const SmolVlmConfig& config() const { return config_; }
  const std::string& directory() const { return directory_; }
  // The text model as a SmolLM2 checkpoint (the decoder's weights under SmolLM2's names).
  const SmolLM2Checkpoint& text() const { return *text_; }
  // Vision encoder and connector weights, graph names.
  const std::map<std::string, std::vector<float>>& vision_weights() const { return vision_; }
  // Sets every parameter the session has (text and vision); an Error names any it lacks.
  void upload(Session& session) const;
  // Sets only the vision encoder and connector parameters (a session sharing the text weights).
  void upload_vision(Session& session) const;

 private:
  SmolVlmConfig config_;
  std::unique_ptr<SmolLM2Checkpoint> text_;  // on the heap: Generators keep its address
  std::map<std::string, std::vector<float>> vision_;
  std::string directory_;
};

// ---- generation -----------------------------------------------------------------------------------

// Prefill over text and images, then SmolLM2's one-token decode session with the KV cache. Prefill
// sessions are built per (images, length bucket) and kept.
class VlmGenerator {
 public:
  // max_positions: KV-cache capacity; 0: min(max_position_embeddings, 2048).
  // weight_storage as for Generator: f16/bf16 keeps the 16-bit matmul and embedding weights on the GPU.
  explicit VlmGenerator(const SmolVlmCheckpoint& checkpoint, int64_t max_positions = 0,
                        DType weight_storage = DType::f32);
  VlmGenerator(VlmGenerator&&) noexcept;
  VlmGenerator& operator=(VlmGenerator&&) noexcept;
  ~VlmGenerator();

  // pixel_values: `images` images [channels, image_size, image_size] each, normalised.
  std::vector<int32_t> generate(std::span<const int32_t> ids, std::span<const float> pixel_values, int64_t images,
                                const SamplingOptions& options = {});
  // Logits of every prompt position, [T, vocab] row-major.
  std::vector<float> prompt_logits(std::span<const int32_t> ids, std::span<const float> pixel_values, int64_t images);
  const GenerationStats& last_stats() const;
  int64_t max_positions() const;
  size_t prefill_sessions_built() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meganeura::models
