// `meganeura tokenize --model DIR TEXT`: prints the token ids of TEXT as a JSON array on the last
// line of stdout. `--decode` reads ids ("1,2,3" or a JSON array) and prints the text instead;
// `--chat` wraps TEXT as one user message with the model's chat template first.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/error.h"
#include "meganeura/tokenizer.h"

namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool decode = false;
  bool skip_special = false;
  bool chat = false;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::string list = text;
  if (!list.empty() && list.front() == '[') {
    if (list.back() != ']') throw meganeura::Error("--decode: \"" + text + "\" starts with '[' but does not end with ']'");
    list = list.substr(1, list.size() - 2);
  }
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string item = list.substr(pos, comma - pos);
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" \t", used) != std::string::npos || value < 0 || value > INT32_MAX)
      throw meganeura::Error("--decode: \"" + item + "\" is not a token id; pass ids like 1,2,3 or [1, 2, 3]");
    ids.push_back(static_cast<int32_t>(value));
    pos = comma + 1;
  }
  return ids;
}

void run_tokenize(const TokenizeOptions& options) {
  const auto tokenizer = meganeura::Tokenizer::load(options.model);
  if (options.decode) {
    std::cout << tokenizer.decode(parse_ids(options.text), options.skip_special) << "\n";
    return;
  }
  std::string text = options.text;
  if (options.chat) {
    const std::vector<meganeura::ChatMessage> messages = {{"user", text}};
    text = tokenizer.apply_chat_template(messages, /*add_generation_prompt=*/true);
  }
  std::cout << nlohmann::json(tokenizer.encode(text)).dump() << "\n";
}

void setup_tokenize(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of TEXT as a JSON array (or decode ids with --decode)");
  sub->add_option("--model", options->model, "Model folder holding tokenizer.json (or the tokenizer.json file)")->required();
  sub->add_option("text", options->text, "Text to encode; with --decode, ids such as 1,2,3 or [1,2,3]")->required();
  sub->add_flag("--decode", options->decode, "Decode ids into text instead of encoding");
  sub->add_flag("--skip-special", options->skip_special, "With --decode: leave special tokens out of the text");
  sub->add_flag("--chat", options->chat, "Encode TEXT as a user message through the model's chat template");
  sub->callback([options] { run_tokenize(*options); });
}

const bool registered = meganeura::cli::register_command("tokenize", setup_tokenize);

}  // namespace
