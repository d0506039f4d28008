// meganeura/tokenizer.h — text to token ids and back, from a Hugging Face `tokenizer.json`.
//
//   auto tokenizer = meganeura::Tokenizer::load("models/SmolLM2-135M");   // folder or tokenizer.json
//   std::vector<int32_t> ids = tokenizer.encode("Hello, world!");
//   std::string text = tokenizer.decode(ids);                             // "Hello, world!"
//
//   std::vector<meganeura::ChatMessage> chat = {{"user", "What is 2+2?"}};
//   std::string prompt = tokenizer.apply_chat_template(chat, /*add_generation_prompt=*/true);
//   ids = tokenizer.encode(prompt);  // special tokens such as <|im_start|> are matched, never split
//
// Supported: byte-level BPE without a normalizer (GPT-2, SmolLM2, Llama 3 style): BPE models with
// merges in either JSON form; pre-tokenizers Sequence, Digits, ByteLevel and Split (regexes run
// through PCRE2 with Unicode properties); ByteLevel decoder; added and special tokens. Anything
// else in the file (a normalizer such as NFC, another model type) is rejected with a
// meganeura::Error naming it. `encode` adds no BOS/EOS tokens: post-processors are not applied.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meganeura {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", ...
  std::string content;
};

class Tokenizer {
 public:
  // `path` is a folder holding tokenizer.json (and optionally tokenizer_config.json and
  // chat_template.jinja), or a tokenizer.json file (its folder is searched for the others).
  static Tokenizer load(const std::filesystem::path& path);

  // The same from file contents already in memory; `config_json` may be empty.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {});

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Throws meganeura::Error when `text` is not valid UTF-8. With `match_special_tokens` false,
  // special tokens written in `text` are encoded as ordinary text (for untrusted user input, so
  // that it cannot inject "<|im_end|>"); other added tokens still match.
  std::vector<int32_t> encode(std::string_view text, bool match_special_tokens = true) const;

  // Invalid UTF-8 produced by byte-level tokens is replaced by U+FFFD, as Hugging Face does.
  // Throws meganeura::Error for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // One more than the largest id of the model vocabulary and the added tokens.
  int32_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // throws for an unknown id
  bool is_special(int32_t id) const;

  // From tokenizer_config.json when present ("bos_token", "eos_token").
  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;

  // The chat template as stored (empty when the model has none).
  const std::string& chat_template() const;

  // Renders `messages` with the model's chat template, as transformers does (trim_blocks and
  // lstrip_blocks on; variables messages, add_generation_prompt, bos_token, eos_token). Templates
  // are Jinja; the subset understood here covers ChatML-style templates such as SmolLM2's and the
  // role-checking ones of Llama 2 and Gemma: {{ }}, {% if/elif/else %}, {% for %} (with an `if`
  // filter and loop.*), {% set %} (namespace() too), + ~ == != < > in, and/or/not, ternaries,
  // subscripts and slices, `is defined/none/string`, filters trim/length/upper/lower/first/last,
  // string methods strip/startswith/endswith, raise_exception(). Anything else throws
  // meganeura::Error naming the construct, as does a model without a template.
  std::string apply_chat_template(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  const std::string& id_to_token_ref(int32_t id) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meganeura
