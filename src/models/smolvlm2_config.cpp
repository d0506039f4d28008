// Reads a SmolVLM config.json: the vision tower's fields, the connector's, and the text config
// through LlamaConfig's parser.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2.h"

namespace meganeura::models {
namespace {

using nlohmann::json;

const json* find(const json& object, const std::string& key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void fail(const std::string& label, const std::string& key, const std::string& problem) {
  throw Error(label + ": \"" + key + "\" " + problem);
}

int64_t positive(const json& object, const std::string& label, const std::string& key, int64_t fallback) {
  const json* value = find(object, key);
  if (!value) return fallback;
  if (!value->is_number_integer()) fail(label, key, "must be an integer, got " + value->dump());
  const auto number = value->get<int64_t>();
  if (number <= 0 || number > std::numeric_limits<int32_t>::max())
    fail(label, key, "must be a positive integer below 2^31, got " + value->dump());
  return number;
}

std::string string_field(const json& object, const std::string& label, const std::string& key, const std::string& fallback) {
  const json* value = find(object, key);
  if (!value) return fallback;
  if (!value->is_string()) fail(label, key, "must be a string, got " + value->dump());
  return value->get<std::string>();
}

SmolVlmVisionConfig read_vision(const json& root, const std::string& label) {
  // transformers' SmolVLMVisionConfig defaults, for the fields a checkpoint leaves out.
  SmolVlmVisionConfig vision{.hidden_size = 1152, .intermediate_size = 3072, .num_hidden_layers = 12,
                             .num_attention_heads = 16, .num_channels = 3, .image_size = 224, .patch_size = 32};
  const json* object = find(root, "vision_config");
  if (!object) return vision;
  if (!object->is_object()) fail(label, "vision_config", "must be an object, got " + object->dump());
  const std::string where = label + " vision_config";
  vision.hidden_size = positive(*object, where, "hidden_size", vision.hidden_size);
  vision.intermediate_size = positive(*object, where, "intermediate_size", vision.intermediate_size);
  vision.num_hidden_layers = positive(*object, where, "num_hidden_layers", vision.num_hidden_layers);
  vision.num_attention_heads = positive(*object, where, "num_attention_heads", vision.num_attention_heads);
  vision.num_channels = positive(*object, where, "num_channels", vision.num_channels);
  vision.image_size = positive(*object, where, "image_size", vision.image_size);
  vision.patch_size = positive(*object, where, "patch_size", vision.patch_size);
  if (const json* eps = find(*object, "layer_norm_eps")) {
    if (!eps->is_number() || !std::isfinite(eps->get<double>()) || eps->get<double>() <= 0)
      fail(where, "layer_norm_eps", "must be a positive number, got " + eps->dump());
    vision.layer_norm_eps = eps->get<double>();
  }
  if (vision.hidden_size % vision.num_attention_heads != 0)
    fail(where, "num_attention_heads", "(" + std::to_string(vision.num_attention_heads) + ") must divide hidden_size (" +
                                           std::to_string(vision.hidden_size) + ")");
  if (vision.image_size % vision.patch_size != 0)
    fail(where, "patch_size", "(" + std::to_string(vision.patch_size) + ") must divide image_size (" +
                                  std::to_string(vision.image_size) + ")");
  const std::string activation = string_field(*object, where, "hidden_act", "gelu_pytorch_tanh");
  if (activation == "gelu_pytorch_tanh" || activation == "gelu_new") {
    vision.gelu_tanh = true;
  } else if (activation == "gelu") {
    vision.gelu_tanh = false;
  } else {
    fail(where, "hidden_act", "is \"" + activation + "\"; the vision MLP supports gelu_pytorch_tanh, gelu_new and gelu");
  }
  return vision;
}

}  // namespace

int64_t SmolVlmConfig::image_tokens() const {
  const int64_t side = vision.patches_per_side() / scale_factor;
  return side * side;
}

bool SmolVlmConfig::describes_vlm(std::string_view json_text) {
  const json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!root.is_object()) return false;
  const auto type = root.find("model_type");
  if (type != root.end() && type->is_string() && (*type == "smolvlm" || *type == "idefics3")) return true;
  return root.contains("vision_config");
}

SmolVlmConfig SmolVlmConfig::from_json(std::string_view json_text, const std::string& label) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(label + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw Error(label + ": expected a JSON object at the top level, got " + std::string(root.type_name()));
  const std::string model_type = string_field(root, label, "model_type", "");
  if (model_type != "smolvlm" && model_type != "idefics3")
    fail(label, "model_type", "is \"" + model_type + "\"; a SmolVLM config has \"smolvlm\" (or \"idefics3\")");

  SmolVlmConfig config;
  config.vision = read_vision(root, label);
  config.scale_factor = positive(root, label, "scale_factor", 2);
  const int64_t side = config.vision.patches_per_side();
  if (side % config.scale_factor != 0)
    fail(label, "scale_factor", "(" + std::to_string(config.scale_factor) + ") must divide the " + std::to_string(side) +
                                    " patches per image side (vision image_size / patch_size)");

  const json* text_config = find(root, "text_config");
  if (!text_config || !text_config->is_object())
    fail(label, "text_config", text_config ? "must be an object, got " + text_config->dump()
                                           : "is missing; a SmolVLM config describes its text model there");
  json text_json = *text_config;
  if (!text_json.contains("model_type")) text_json["model_type"] = "llama";
  // The conditional-generation model ties its lm_head by the top-level flag.
  const json* tie = find(root, "tie_word_embeddings");
  if (tie && !tie->is_boolean()) fail(label, "tie_word_embeddings", "must be true or false, got " + tie->dump());
  text_json["tie_word_embeddings"] = tie ? tie->get<bool>() : false;
  config.text = LlamaConfig::from_json(text_json.dump(), label + " text_config");

  const json* image_token = find(root, "image_token_id");
  const int64_t image_token_id = image_token ? (image_token->is_number_integer() ? image_token->get<int64_t>() : -1) : 128257;
  if (image_token_id < 0 || image_token_id >= config.text.vocab_size)
    fail(label, "image_token_id", (image_token ? "is " + image_token->dump() : std::string("is missing (default 128257)")) +
                                      "; it must be a token id below the text vocab_size (" +
                                      std::to_string(config.text.vocab_size) + ")");
  config.image_token_id = static_cast<int32_t>(image_token_id);
  return config;
}

namespace {

std::optional<std::string> read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// generate() stops at generation_config.json's eos_token_id (SmolVLM2's <end_of_utterance>), which
// the text config may lack.
void read_generation_eos(const std::filesystem::path& file, LlamaConfig& text) {
  const std::optional<std::string> content = read_file(file);
  if (!content) return;
  const json root = json::parse(*content, nullptr, /*allow_exceptions=*/false);
  if (!root.is_object()) throw Error(file.string() + ": not a JSON object; fix or remove the file");
  const json* eos = find(root, "eos_token_id");
  if (!eos) return;
  std::vector<int32_t> ids;
  for (const json& id : eos->is_array() ? *eos : json::array({*eos})) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= text.vocab_size)
      fail(file.string(), "eos_token_id", "must hold token ids below the vocab_size, got " + eos->dump());
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  text.eos_token_ids = ids;
}

}  // namespace

SmolVlmConfig SmolVlmConfig::load(const std::string& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file)) file /= "config.json";
  const std::optional<std::string> content = read_file(file);
  if (!content) throw Error("cannot read " + file.string() + "; pass a model folder holding config.json or the file itself");
  SmolVlmConfig config = from_json(*content, file.string());
  read_generation_eos(file.parent_path() / "generation_config.json", config.text);
  return config;
}

}  // namespace meganeura::models
