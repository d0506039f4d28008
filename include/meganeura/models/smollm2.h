// meganeura/models/smollm2.h — SmolLM2 (the Llama architecture): configuration, graphs for
// training, prefill and KV-cache decoding, checkpoint loading and text generation on the GPU.
//
//   auto checkpoint = meganeura::models::SmolLM2Checkpoint::open_or_download("HuggingFaceTB/SmolLM2-135M");
//   meganeura::models::Generator generator(checkpoint);
//   meganeura::models::SamplingOptions sampling;
//   sampling.max_new_tokens = 16;
//   sampling.on_token = [](int32_t id) { std::cout << id << " "; return true; };  // false stops
//   std::vector<int32_t> ids = generator.generate(prompt_ids, sampling);          // greedy
//
//   // Loss and gradients of a batch (training parity with another framework):
//   meganeura::Graph g = meganeura::models::training_graph(checkpoint.config(), 2, 9);
//   meganeura::Session session = meganeura::build_session(g);
//   checkpoint.upload(session);
//
// Parameters carry the Hugging Face names and shapes (model.layers.0.self_attn.q_proj.weight,
// [out, in]), so checkpoints load without renaming; a tied lm_head reuses model.embed_tokens.weight.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meganeura/graph.h"
#include "meganeura/nn.h"

namespace meganeura {
class Session;
}

namespace meganeura::models {

// The fields of a Hugging Face Llama config.json that the architecture needs. Both layouts are
// read: rope_theta inside "rope_parameters" (with "dtype"), or at the top level with
// "rope_scaling": null (with "torch_dtype"). Anything the graphs cannot honour (rope scaling,
// biases, another activation) is an Error naming the field.
struct LlamaConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // absent: num_attention_heads
  int64_t head_dim = 0;             // absent: hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // "eos_token_id": a number or a list
  std::string dtype = "float32";       // the checkpoint's stored type ("bfloat16", ...)

  // `label` names the source in error messages.
  static LlamaConfig from_json(std::string_view json_text, const std::string& label = "config.json");
  // A config.json file, or a folder holding one.
  static LlamaConfig load(const std::string& path);
  // HuggingFaceTB/SmolLM2-135M's configuration (576 wide, 30 layers, 9 heads, 3 KV heads, vocabulary
  // 49152, tied embeddings): benchmarks build it with random weights, no download needed.
  static LlamaConfig smollm2_135m();

  nn::TransformerConfig block_config() const;
};

// The layers, created in a graph under the Hugging Face names.
struct SmolLM2 {
  SmolLM2(Graph& graph, const LlamaConfig& config);

  // ids i32 [B, S] → logits [B, S, vocab].
  Tensor forward(Graph& graph, Tensor ids) const;
  // ids [B, S] at positions [offset, offset + S); one cache per layer, replaced by its written
  // version (make them graph outputs). Returns the final hidden states [B, S, hidden] after the norm.
  Tensor forward_cached(Graph& graph, Tensor ids, std::vector<nn::KvCache>& caches, Tensor offset) const;
  // The same from the first layer's input [B, S, hidden] (embeddings another model prepared).
  Tensor forward_cached_embeddings(Graph& graph, Tensor embeddings, std::vector<nn::KvCache>& caches,
                                   Tensor offset) const;
  // Normalised hidden states [..., hidden] → logits [..., vocab].
  Tensor lm_head(Graph& graph, Tensor hidden) const;

  LlamaConfig config;
  nn::Embedding embed_tokens;
  std::vector<nn::TransformerBlock> layers;
  nn::RmsNorm norm;
  std::optional<nn::Linear> lm_head_linear;  // untied models only
};

// ---- graphs (inputs and outputs by name; the output order is part of the contract) ----------

// inputs "input_ids" i32 [B, S]; outputs {logits [B, S, vocab]}.
Graph logits_graph(const LlamaConfig& config, int64_t batch, int64_t length);

// inputs "input_ids" and "labels", i32 [B, S]; outputs {loss []}: the mean cross-entropy of
// logits[b, s] against labels[b, s] over the labels that are not ignore_index.
Graph training_graph(const LlamaConfig& config, int64_t batch, int64_t length, int64_t ignore_index = -100);
// The labels of next-token training as transformers makes them: inputs shifted left by one, the
// last position of each row ignore_index.
std::vector<int32_t> next_token_labels(std::span<const int32_t> ids, int64_t batch, int64_t length,
                                       int32_t ignore_index = -100);

// Prefill (length > 1) or one-token decoding (length 1) with KV caches, batch 1:
// inputs "input_ids" i32 [1, length], "offset" i32 [1] (position of the first id), "last" i32 [1]
// (index within this call's ids whose next token is chosen), "logit_bias" f32 [vocab] (added
// after scaling: Gumbel noise for sampling, a large negative value to mask a token), "inv_temperature"
// f32 [1], "top_k" i32 [1] (0: no limit), "top_p" f32 [1] (1: no limit), "sample_noise" f32 [vocab]
// (Gumbel noise added after the top-k / top-p filter), "cache_k.<layer>" and "cache_v.<layer>" f32
// [1, kv_heads, max_positions, head_dim]; with s = logits[last]·inv_temperature + logit_bias,
// outputs {next_token i32 [1] = argmax(s + top_k_top_p_mask(s, top_k, top_p) + sample_noise),
// logits f32 [1, vocab] of row `last` (or [1, length, vocab] with all_logits), then the written
// caches k, v of every layer}.
//
// `embed` turns input_ids into the first layer's input [1, length, hidden] (empty: the token
// embeddings); a prompt that is more than tokens (a vision-language model's image features) adds
// its own inputs and parameters there.
using TokenEmbedder = std::function<Tensor(Graph& graph, const SmolLM2& model, Tensor ids)>;
Graph decoding_graph(const LlamaConfig& config, int64_t length, int64_t max_positions, bool all_logits = false,
                     const TokenEmbedder& embed = {});

// ---- checkpoints ------------------------------------------------------------------------------

// config.json plus the weights as f32 (F32, F16 or BF16 on disk), checked against the graph's
// parameters: one Error lists every missing, unexpected or mis-shaped tensor.
class SmolLM2Checkpoint {
 public:
  static SmolLM2Checkpoint open(const std::string& directory);
  // Downloads into the Hugging Face cache (link meganeura_http; HF_HUB_OFFLINE honoured).
  static SmolLM2Checkpoint download(const std::string& repo_id, const std::string& revision = "main");
  // An existing path opens; anything else is taken as a Hub repository id.
  static SmolLM2Checkpoint open_or_download(const std::string& directory_or_repo_id);
  // Weights already in memory (random ones for benchmarks, for instance); names as the graphs use.
  SmolLM2Checkpoint(LlamaConfig config, std::map<std::string, std::vector<float>> weights, std::string directory = {});

  const LlamaConfig& config() const { return config_; }
  const std::string& directory() const { return directory_; }  // empty when built in memory
  const std::map<std::string, std::vector<float>>& weights() const { return weights_; }
  // Sets every parameter the session has; an Error names any it lacks.
  void upload(Session& session) const;
  // The Hugging Face name of a graph parameter (a tied lm_head has none of its own).
  static const std::string& embedding_name();

 private:
  LlamaConfig config_;
  std::map<std::string, std::vector<float>> weights_;
  std::string directory_;
};

// ---- generation -------------------------------------------------------------------------------

struct SamplingOptions {
  int64_t max_new_tokens = 32;  // exactly this many unless a stop token comes first
  double temperature = 0.0;     // 0: greedy
  int64_t top_k = 0;            // 0: no limit
  double top_p = 1.0;           // nucleus mass; 1: no limit
  uint64_t seed = 0;
  // Generation ends after producing one of these (it is included in the result). Empty: the
  // config's eos_token_ids.
  std::vector<int32_t> stop_tokens;
  // Mask the end-of-sequence tokens so they are never chosen (transformers' min_new_tokens).
  bool ignore_eos = false;
  // Called with each new id as soon as it is known; returning false stops generation.
  std::function<bool(int32_t)> on_token;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t new_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // all one-token steps together
};

// Runs prefill and decode sessions over one set of weights on the GPU. Prefill sessions are built
// per length bucket (powers of two from 16) and kept, so a new prompt length reuses one; greedy,
// temperature, top_k and top_p sampling all choose the token on the GPU and read back only its id
// (ties at a top_k / top_p threshold are all kept).
class Generator {
 public:
  // max_positions: KV-cache capacity (prompt + new tokens); 0: min(max_position_embeddings, 2048).
  // weight_storage: f16 or bf16 keeps the matmul and embedding weights as 16-bit values on the GPU
  // (half the bytes each decode step reads; SessionOptions::weight_storage); f32 is the reference.
  explicit Generator(const SmolLM2Checkpoint& checkpoint, int64_t max_positions = 0,
                     DType weight_storage = DType::f32);
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;
  ~Generator();

  std::vector<int32_t> generate(std::span<const int32_t> prompt, const SamplingOptions& options = {});
  // Logits of every prompt position, [T, vocab] row-major.
  std::vector<float> prompt_logits(std::span<const int32_t> prompt);

  // Prompts that need more than ids (a vision-language model's image features) prefill on a session
  // of the caller's decoding_graph (with a TokenEmbedder) of prefill_bucket(prompt size) positions
  // (all_logits for prompt_logits). build_prefill shares this generator's weights with it and sets
  // the inputs generation manages; the caller uploads its own parameters and sets its own inputs.
  Session build_prefill(const Graph& graph) const;
  std::vector<int32_t> generate(Session& prefill, std::span<const int32_t> prompt, const SamplingOptions& options = {});
  std::vector<float> prompt_logits(Session& prefill, std::span<const int32_t> prompt);
  const GenerationStats& last_stats() const;
  int64_t max_positions() const;
  size_t prefill_sessions_built() const;
  // Device bytes the generator holds, from the sessions' memory plans: the weights once (prefill
  // sessions borrow the decode session's), plus each session's own inputs (KV caches included),
  // outputs, state and intermediate arena. It grows as prefill buckets are built. The context's
  // host-visible staging buffer is not counted: it belongs to no session.
  uint64_t device_memory() const;

 private:
  std::vector<int32_t> generate_on(Session* custom_prefill, std::span<const int32_t> prompt,
                                   const SamplingOptions& options);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The bucket a prompt of `length` tokens is padded to: the next power of two from 16, capped at
// max_positions.
int64_t prefill_bucket(int64_t length, int64_t max_positions);

}  // namespace meganeura::models
