// SmolVLM2 processor settings (preprocessor_config.json, processor_config.json) and the prompt
// layout: image token expansion and the chat template.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2_processor.h"

namespace meganeura::models {
namespace {

using nlohmann::json;

json parse(std::string_view text, const std::string& label) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(label + ": not valid JSON (" + e.what() + ")");
  }
}

void read_bool(const json& config, const char* field, bool& out, const std::string& label) {
  auto it = config.find(field);
  if (it == config.end()) return;
  if (!it->is_boolean()) throw Error(label + ": \"" + field + "\" must be true or false, got " + it->dump());
  out = it->get<bool>();
}

int64_t positive_integer(const json& value, const std::string& field, const std::string& label) {
  if (!value.is_number_integer() || value.get<int64_t>() < 1)
    throw Error(label + ": \"" + field + "\" must be a positive integer, got " + value.dump());
  return value.get<int64_t>();
}

// {"longest_edge": N} is the only size form the SmolVLM processor resizes by.
void read_longest_edge(const json& config, const char* field, int64_t& out, const std::string& label) {
  auto it = config.find(field);
  if (it == config.end()) return;
  if (!it->is_object() || !it->contains("longest_edge"))
    throw Error(label + ": \"" + field + "\" must be {\"longest_edge\": N}, got " + it->dump() +
                " (height/width and shortest_edge sizes are not supported by this processor)");
  out = positive_integer(it->at("longest_edge"), std::string(field) + ".longest_edge", label);
}

void read_per_channel(const json& config, const char* field, std::array<double, 3>& out, const std::string& label) {
  auto it = config.find(field);
  if (it == config.end()) return;
  if (it->is_number()) {
    out.fill(it->get<double>());
    return;
  }
  if (!it->is_array() || it->size() != 3 || !(*it)[0].is_number() || !(*it)[1].is_number() || !(*it)[2].is_number())
    throw Error(label + ": \"" + field + "\" must be a number or a list of 3 numbers (RGB), got " + it->dump());
  for (size_t c = 0; c < 3; ++c) out[c] = (*it)[c].get<double>();
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

SmolVlmProcessorConfig SmolVlmProcessorConfig::from_json(std::string_view preprocessor_json,
                                                         std::string_view processor_json, const std::string& label) {
  SmolVlmProcessorConfig config;
  json pre = parse(preprocessor_json, label);
  if (!pre.is_object()) throw Error(label + ": expected a JSON object");
  if (auto it = pre.find("image_processor_type"); it != pre.end()) {
    std::string type = it->is_string() ? it->get<std::string>() : it->dump();
    // The Fast variants resize with torch instead of Pillow; their numbers differ slightly.
    if (type.rfind("SmolVLMImageProcessor", 0) != 0 && type.rfind("Idefics3ImageProcessor", 0) != 0)
      throw Error(label + ": \"image_processor_type\" is " + type +
                  "; only SmolVLMImageProcessor and Idefics3ImageProcessor are supported");
  }
  read_bool(pre, "do_convert_rgb", config.do_convert_rgb, label);
  read_bool(pre, "do_resize", config.do_resize, label);
  read_bool(pre, "do_image_splitting", config.do_image_splitting, label);
  read_bool(pre, "do_rescale", config.do_rescale, label);
  read_bool(pre, "do_normalize", config.do_normalize, label);
  read_bool(pre, "do_pad", config.do_pad, label);
  read_longest_edge(pre, "size", config.longest_edge, label);
  read_longest_edge(pre, "max_image_size", config.max_image_size, label);
  if (auto it = pre.find("resample"); it != pre.end()) {
    if (!it->is_number_integer())
      throw Error(label + ": \"resample\" must be a Pillow filter number, got " + it->dump());
    try {
      config.resample = resample_filter_from_code(it->get<int64_t>());
    } catch (const Error& e) {
      throw Error(label + ": \"resample\": " + e.what());
    }
  }
  if (auto it = pre.find("rescale_factor"); it != pre.end()) {
    if (!it->is_number() || !(it->get<double>() > 0.0))
      throw Error(label + ": \"rescale_factor\" must be a positive number, got " + it->dump());
    config.rescale_factor = it->get<double>();
  }
  read_per_channel(pre, "image_mean", config.image_mean, label);
  read_per_channel(pre, "image_std", config.image_std, label);
  for (double s : config.image_std)
    if (s == 0.0) throw Error(label + ": \"image_std\" has a zero entry; normalising would divide by zero");

  if (!processor_json.empty()) {
    json processor = parse(processor_json, "processor_config.json");
    if (!processor.is_object()) throw Error("processor_config.json: expected a JSON object");
    if (auto it = processor.find("image_seq_len"); it != processor.end())
      config.image_seq_len = positive_integer(*it, "image_seq_len", "processor_config.json");
  }
  return config;
}

SmolVlmProcessor::SmolVlmProcessor(SmolVlmProcessorConfig config) : config_(std::move(config)) {
  if (config_.longest_edge < 1 || config_.max_image_size < 1 || config_.image_seq_len < 1)
    throw Error("SmolVlmProcessor: longest_edge, max_image_size and image_seq_len must be positive");
}

SmolVlmProcessor SmolVlmProcessor::from_json(std::string_view preprocessor_json, std::string_view processor_json) {
  return SmolVlmProcessor(SmolVlmProcessorConfig::from_json(preprocessor_json, processor_json));
}

SmolVlmProcessor SmolVlmProcessor::from_directory(const std::string& dir) {
  std::filesystem::path folder(dir);
  auto pre_path = folder / "preprocessor_config.json";
  if (!std::filesystem::exists(pre_path))
    throw Error("SmolVlmProcessor::from_directory: " + pre_path.string() +
                " is missing (download the model's processor files too)");
  auto processor_path = folder / "processor_config.json";
  std::string processor_text = std::filesystem::exists(processor_path) ? read_file(processor_path) : std::string();
  return SmolVlmProcessor(SmolVlmProcessorConfig::from_json(read_file(pre_path), processor_text, pre_path.string()));
}

std::string SmolVlmProcessor::image_prompt(int64_t rows, int64_t cols) const {
  if (rows < 0 || cols < 0 || (rows == 0) != (cols == 0))
    throw Error("image_prompt: rows " + std::to_string(rows) + " and cols " + std::to_string(cols) +
                " must both be 0 (no split) or both positive");
  std::string image_tokens;
  image_tokens.reserve(config_.image_token.size() * static_cast<size_t>(config_.image_seq_len));
  for (int64_t i = 0; i < config_.image_seq_len; ++i) image_tokens += config_.image_token;
  const std::string global = config_.fake_image_token + config_.global_image_token + image_tokens +
                             config_.fake_image_token;
  if (rows == 0) return global;
  std::string text;
  for (int64_t r = 1; r <= rows; ++r) {
    for (int64_t c = 1; c <= cols; ++c)
      text += config_.fake_image_token + "<row_" + std::to_string(r) + "_col_" + std::to_string(c) + ">" + image_tokens;
    text += "\n";
  }
  return text + "\n" + global;
}

std::string SmolVlmProcessor::expand_prompt(const std::string& text,
                                            const std::vector<std::array<int64_t, 2>>& grids) const {
  const std::string& token = config_.image_token;
  std::string out;
  size_t start = 0;
  size_t used = 0;
  for (size_t at = text.find(token); at != std::string::npos; at = text.find(token, start)) {
    if (used == grids.size())
      throw Error("expand_prompt: the text holds more \"" + token + "\" tokens than the " +
                  std::to_string(grids.size()) + " image(s) given");
    out.append(text, start, at - start);
    out += image_prompt(grids[used][0], grids[used][1]);
    ++used;
    start = at + token.size();
  }
  if (used != grids.size())
    throw Error("expand_prompt: the text holds " + std::to_string(used) + " \"" + token + "\" token(s) but " +
                std::to_string(grids.size()) + " image(s) were given; put one " + token + " where each image goes");
  out.append(text, start, std::string::npos);
  return out;
}

std::string SmolVlmProcessor::expand_prompt(const std::string& text, int64_t rows, int64_t cols) const {
  return expand_prompt(text, std::vector<std::array<int64_t, 2>>{{rows, cols}});
}

std::string SmolVlmProcessor::chat_prompt(const std::string& user_text, bool with_image) const {
  // The role is followed by ':' alone when the turn opens with an image, by ': ' otherwise.
  return "<|im_start|>User" + std::string(with_image ? ":" + config_.image_token : ": ") + user_text +
         config_.end_of_utterance_token + "\nAssistant:";
}

}  // namespace meganeura::models
