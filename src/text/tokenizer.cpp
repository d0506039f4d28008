// Tokenizer: tokenizer.json loading, encode and decode (the pieces live beside this file).
#include "meganeura/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "meganeura/error.h"
#include "text/added_tokens.h"
#include "text/bpe_model.h"
#include "text/byte_level.h"
#include "text/chat_template.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace meganeura {

struct Tokenizer::Impl {
  std::unique_ptr<text::BpeModel> model;
  std::optional<text::PreTokenizer> pre_tokenizer;
  bool byte_level_decoder = false;  // otherwise tokens are joined with spaces, as Hugging Face does without a decoder
  std::unordered_map<int32_t, text::AddedToken> added_by_id;
  text::TokenIds added_by_content;
  // Tokens matched on the raw text, then tokens matched after normalization (Hugging Face's two passes).
  std::optional<text::AddedTokenMatcher> raw_matcher, normalized_matcher;
  int32_t vocab_size = 0;
  std::string chat_template;
  std::optional<int32_t> bos_id, eos_id;

  void encode_text(std::string_view piece, std::vector<int32_t>& out) const {
    for (const std::string& word : pre_tokenizer->split(piece)) model->encode_piece(word, out);
  }
};

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string() + "; check that the file exists and is readable");
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

nlohmann::json parse_json(std::string_view text, std::string_view name) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string(name) + " is not valid JSON: " + e.what());
  }
}

// "eos_token" in tokenizer_config.json is either the token's text or an object with "content".
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// "chat_template" is a string, or a list of {"name", "template"} of which "default" is the chat one.
std::string config_chat_template(const nlohmann::json& config) {
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") && entry["template"].is_string())
        return entry["template"].get<std::string>();
    }
  }
  throw Error("tokenizer_config.json: \"chat_template\" must be a string or a list holding a template named \"default\"");
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  const bool is_folder = std::filesystem::is_directory(path);
  const std::filesystem::path folder = is_folder ? path : path.parent_path();
  const std::filesystem::path tokenizer_file = is_folder ? path / "tokenizer.json" : path;
  if (!std::filesystem::exists(tokenizer_file))
    throw Error("tokenizer file " + tokenizer_file.string() + " does not exist; pass a model folder holding tokenizer.json");
  const std::string tokenizer_json = read_file(tokenizer_file);
  const auto config_file = folder / "tokenizer_config.json";
  const std::string config_json = std::filesystem::exists(config_file) ? read_file(config_file) : std::string();
  Tokenizer tokenizer = from_json(tokenizer_json, config_json);
  // Newer checkpoints keep the template in its own file, which takes precedence.
  if (const auto template_file = folder / "chat_template.jinja"; std::filesystem::exists(template_file))
    tokenizer.impl_->chat_template = read_file(template_file);
  return tokenizer;
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  // Fields of the wrong JSON type surface as nlohmann exceptions; report them as ours.
  try {
    const nlohmann::json root = parse_json(tokenizer_json, "tokenizer.json");
    if (!root.is_object() || !root.contains("model"))
      throw Error("tokenizer.json has no \"model\" entry; is this a Hugging Face tokenizers file?");
    auto impl = std::make_unique<Impl>();
    impl->model = std::make_unique<text::BpeModel>(root["model"]);

    if (const auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
      throw Error("tokenizer.json: normalizer " + it->value("type", std::string("?")) +
                  " is not supported; only tokenizers without a normalizer (byte-level BPE) can be loaded");
    }
    impl->pre_tokenizer.emplace(root.value("pre_tokenizer", nlohmann::json()));

    if (const auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
      const std::string type = it->value("type", std::string());
      if (type != "ByteLevel")
        throw Error("tokenizer.json: decoder \"" + type + "\" is not supported (supported: ByteLevel)");
      impl->byte_level_decoder = true;
    }

    // Ids are assigned the way Hugging Face does on loading, whatever the file says (for files it
    // wrote they agree): a token already in the model vocabulary keeps the model's id, a new one gets
    // the next id after the model vocabulary and the added tokens before it.
    std::vector<text::AddedToken> raw, normalized;
    std::optional<int32_t> largest_added;
    for (text::AddedToken& token : text::parse_added_tokens(root.value("added_tokens", nlohmann::json()))) {
      if (token.content.empty() || impl->added_by_content.contains(token.content)) continue;
      if (const auto model_id = impl->model->token_to_id(token.content)) {
        token.id = *model_id;
      } else {
        const int32_t model_size = impl->model->vocab_entry_count();
        token.id = largest_added && (*largest_added >= model_size || model_size == 0) ? *largest_added + 1 : model_size;
      }
      largest_added = std::max(largest_added.value_or(token.id), token.id);
      impl->added_by_content[token.content] = token.id;
      impl->added_by_id[token.id] = token;
      (token.normalized ? normalized : raw).push_back(std::move(token));
    }
    impl->raw_matcher.emplace(std::move(raw));
    impl->normalized_matcher.emplace(std::move(normalized));

    impl->vocab_size = impl->model->vocab_size();
    for (const auto& [id, token] : impl->added_by_id) impl->vocab_size = std::max(impl->vocab_size, id + 1);

    if (!config_json.empty()) {
      const nlohmann::json config = parse_json(config_json, "tokenizer_config.json");
      if (!config.is_object()) throw Error("tokenizer_config.json must hold a JSON object");
      impl->chat_template = config_chat_template(config);
      Tokenizer lookup(std::move(impl));
      if (const auto bos = config_token(config, "bos_token")) lookup.impl_->bos_id = lookup.token_to_id(*bos);
      if (const auto eos = config_token(config, "eos_token")) lookup.impl_->eos_id = lookup.token_to_id(*eos);
      return lookup;
    }
    return Tokenizer(std::move(impl));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("tokenizer.json or tokenizer_config.json has an entry of an unexpected type: ") + e.what());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool match_special_tokens) const {
  text::require_valid_utf8(text, "encode() text");
  std::vector<int32_t> ids;
  for (const auto& raw : impl_->raw_matcher->split(text, match_special_tokens)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string_view piece = text.substr(raw.begin, raw.end - raw.begin);
    for (const auto& segment : impl_->normalized_matcher->split(piece, match_special_tokens)) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
      } else {
        impl_->encode_text(piece.substr(segment.begin, segment.end - segment.begin), ids);
      }
    }
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    const auto added = impl_->added_by_id.find(id);
    if (skip_special_tokens && added != impl_->added_by_id.end() && added->second.special) continue;
    const std::string& token = added != impl_->added_by_id.end() ? added->second.content : id_to_token_ref(id);
    if (!impl_->byte_level_decoder) {
      if (!first) bytes += ' ';
      bytes += token;
    } else if (const auto decoded = text::byte_level_to_bytes(token)) {
      bytes += *decoded;
    } else {
      bytes += token;  // not in the byte alphabet (an added token with a space, say): its own text
    }
    first = false;
  }
  return impl_->byte_level_decoder ? text::utf8_lossy(bytes) : bytes;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  return impl_->model->token_to_id(token);
}

const std::string& Tokenizer::id_to_token_ref(int32_t id) const {
  if (const auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return it->second.content;
  if (const std::string* token = impl_->model->id_to_token(id)) return *token;
  throw Error("token id " + std::to_string(id) + " is not in the vocabulary (ids run from 0 to " +
              std::to_string(impl_->vocab_size - 1) + ")");
}

std::string Tokenizer::id_to_token(int32_t id) const { return id_to_token_ref(id); }

bool Tokenizer::is_special(int32_t id) const {
  const auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && it->second.special;
}

std::optional<int32_t> Tokenizer::bos_token_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_token_id() const { return impl_->eos_id; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

std::string Tokenizer::apply_chat_template(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  if (impl_->chat_template.empty()) {
    throw Error("this tokenizer has no chat template (tokenizer_config.json has no \"chat_template\"); "
                "format the prompt yourself or use an instruction-tuned model's tokenizer");
  }
  std::optional<std::string> bos, eos;
  if (impl_->bos_id) bos = id_to_token(*impl_->bos_id);
  if (impl_->eos_id) eos = id_to_token(*impl_->eos_id);
  return text::render_chat_template(impl_->chat_template, messages, add_generation_prompt, bos, eos);
}

}  // namespace meganeura
