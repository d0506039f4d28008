// Reads a Hugging Face Llama config.json in both layouts (see LlamaConfig in models/smollm2.h).
// Self-contained (JSON and Error only) so the fuzz target builds it alone.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"

namespace meganeura::models {
namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& root, const std::string& label) : root_(root), label_(label) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(label_ + ": \"" + key + "\" " + problem);
  }

  const json* find(const json& object, const std::string& key) const {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }

  int64_t positive(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const {
    const json* value = find(root_, key);
    if (!value) {
      if (fallback) return *fallback;
      fail(key, "is missing; a Llama config.json must give it");
    }
    if (!value->is_number_integer()) fail(key, "must be an integer, got " + value->dump());
    const auto number = value->get<int64_t>();
    // Dimensions beyond 2^31 cannot be model sizes; refusing them keeps products from overflowing.
    if (number <= 0 || number > std::numeric_limits<int32_t>::max())
      fail(key, "must be a positive integer below 2^31, got " + value->dump());
    return number;
  }

  double real(const json& object, const std::string& key, double fallback, bool must_be_positive = true) const {
    const json* value = find(object, key);
    if (!value) return fallback;
    if (!value->is_number()) fail(key, "must be a number, got " + value->dump());
    const double number = value->get<double>();
    if (!std::isfinite(number) || (must_be_positive && number <= 0)) fail(key, "must be a positive number, got " + value->dump());
    return number;
  }

  bool flag(const std::string& key, bool fallback) const {
    const json* value = find(root_, key);
    if (!value) return fallback;
    if (!value->is_boolean()) fail(key, "must be true or false, got " + value->dump());
    return value->get<bool>();
  }

  std::string text(const std::string& key) const {
    const json* value = find(root_, key);
    if (!value) return {};
    if (!value->is_string()) fail(key, "must be a string, got " + value->dump());
    return value->get<std::string>();
  }

  int32_t token_id(const json& value, const std::string& key) const {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > std::numeric_limits<int32_t>::max())
      fail(key, "must hold token ids (non-negative integers), got " + value.dump());
    return static_cast<int32_t>(value.get<int64_t>());
  }

  const json& root() const { return root_; }

 private:
  const json& root_;
  const std::string& label_;
};

void read_rope(const Reader& reader, LlamaConfig& config) {
  const json& root = reader.root();
  if (const json* parameters = reader.find(root, "rope_parameters")) {
    if (!parameters->is_object()) reader.fail("rope_parameters", "must be an object, got " + parameters->dump());
    const json* type = reader.find(*parameters, "rope_type");
    if (type && (!type->is_string() || type->get<std::string>() != "default"))
      reader.fail("rope_parameters.rope_type", "is " + type->dump() + "; only \"default\" rotary embeddings are supported");
    config.rope_theta = reader.real(*parameters, "rope_theta", reader.real(root, "rope_theta", config.rope_theta));
    return;
  }
  if (const json* scaling = reader.find(root, "rope_scaling")) {
    const json* type = scaling->is_object() ? reader.find(*scaling, "rope_type") : nullptr;
    if (!type) type = scaling->is_object() ? reader.find(*scaling, "type") : nullptr;
    if (!type || !type->is_string() || type->get<std::string>() != "default")
      reader.fail("rope_scaling", "is " + scaling->dump() + "; only unscaled (default) rotary embeddings are supported");
  }
  config.rope_theta = reader.real(root, "rope_theta", config.rope_theta);
}

}  // namespace

LlamaConfig LlamaConfig::from_json(std::string_view json_text, const std::string& label) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(label + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw Error(label + ": expected a JSON object at the top level, got " + std::string(root.type_name()));
  const Reader reader(root, label);

  LlamaConfig config;
  const std::string model_type = reader.text("model_type");
  if (!model_type.empty() && model_type != "llama")
    reader.fail("model_type", "is \"" + model_type + "\"; only \"llama\" (SmolLM2) configs are supported");
  config.vocab_size = reader.positive("vocab_size");
  config.hidden_size = reader.positive("hidden_size");
  config.intermediate_size = reader.positive("intermediate_size");
  config.num_hidden_layers = reader.positive("num_hidden_layers");
  config.num_attention_heads = reader.positive("num_attention_heads");
  config.num_key_value_heads = reader.positive("num_key_value_heads", config.num_attention_heads);
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    reader.fail("num_key_value_heads", "(" + std::to_string(config.num_key_value_heads) +
                                           ") must divide num_attention_heads (" +
                                           std::to_string(config.num_attention_heads) + ")");
  if (!reader.find(root, "head_dim") && config.hidden_size % config.num_attention_heads != 0)
    reader.fail("head_dim", "is missing and hidden_size is not a multiple of num_attention_heads");
  config.head_dim = reader.positive("head_dim", config.hidden_size / config.num_attention_heads);
  if (config.head_dim % 2 != 0) reader.fail("head_dim", "must be even for rotary embeddings");
  config.max_position_embeddings = reader.positive("max_position_embeddings", config.max_position_embeddings);
  config.rms_norm_eps = reader.real(root, "rms_norm_eps", config.rms_norm_eps);
  config.tie_word_embeddings = reader.flag("tie_word_embeddings", false);
  read_rope(reader, config);

  const std::string activation = reader.text("hidden_act");
  if (!activation.empty() && activation != "silu")
    reader.fail("hidden_act", "is \"" + activation + "\"; the Llama MLP here uses \"silu\"");
  if (reader.flag("attention_bias", false)) reader.fail("attention_bias", "is true; projections without bias only");
  if (reader.flag("mlp_bias", false)) reader.fail("mlp_bias", "is true; projections without bias only");

  if (const json* bos = reader.find(root, "bos_token_id")) config.bos_token_id = reader.token_id(*bos, "bos_token_id");
  if (const json* eos = reader.find(root, "eos_token_id")) {
    if (eos->is_array()) {
      for (const json& id : *eos) config.eos_token_ids.push_back(reader.token_id(id, "eos_token_id"));
    } else {
      config.eos_token_ids.push_back(reader.token_id(*eos, "eos_token_id"));
    }
  }
  std::string dtype = reader.text("dtype");
  if (dtype.empty()) dtype = reader.text("torch_dtype");
  if (!dtype.empty()) config.dtype = dtype;
  return config;
}

LlamaConfig LlamaConfig::smollm2_135m() {
  LlamaConfig c;
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.max_position_embeddings = 8192;
  c.rope_theta = 100000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  c.eos_token_ids = {0};
  return c;
}

LlamaConfig LlamaConfig::load(const std::string& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file)) file /= "config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read " + file.string() + "; pass a model folder holding config.json or the file itself");
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(text.str(), file.string());
}

nn::TransformerConfig LlamaConfig::block_config() const {
  nn::TransformerConfig block;
  block.hidden = hidden_size;
  block.intermediate = intermediate_size;
  block.num_heads = num_attention_heads;
  block.num_kv_heads = num_key_value_heads;
  block.head_dim = head_dim;
  block.rope_theta = rope_theta;
  block.rms_norm_eps = rms_norm_eps;
  return block;
}

}  // namespace meganeura::models
