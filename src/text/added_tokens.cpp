#include "text/added_tokens.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "meganeura/error.h"
#include "text/regex.h"
#include "text/utf8.h"

namespace meganeura::text {
namespace {

bool flag(const nlohmann::json& entry, const char* key, bool fallback) {
  const auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw Error(std::string("tokenizer.json: added token field \"") + key + "\" must be true or false");
  return it->get<bool>();
}

size_t start_of_last_character(std::string_view text) {
  size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

std::string_view character_at(std::string_view text, size_t pos) { return text.substr(pos, utf8_sequence_length(text, pos)); }
std::string_view character_before(std::string_view text, size_t end) {
  const size_t begin = start_of_last_character(text.substr(0, end));
  return text.substr(begin, end - begin);
}

// \w and \s with Unicode properties, as the regexes Hugging Face uses for these checks.
bool is_word_character(std::string_view character) {
  static const Regex word(R"(\A\w\z)");
  return word.search(character);
}
bool is_whitespace(std::string_view character) {
  static const Regex space(R"(\A\s\z)");
  return space.search(character);
}

}  // namespace

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& config) {
  std::vector<AddedToken> tokens;
  if (config.is_null()) return tokens;
  if (!config.is_array()) throw Error("tokenizer.json: \"added_tokens\" must be an array");
  for (const auto& entry : config) {
    if (!entry.is_object() || !entry.contains("content") || !entry["content"].is_string() || !entry.contains("id") ||
        !entry["id"].is_number_integer() || entry["id"].get<int64_t>() < 0 || entry["id"].get<int64_t>() > INT32_MAX) {
      throw Error("tokenizer.json: added token " + entry.dump() + " needs a string \"content\" and a non-negative integer \"id\"");
    }
    AddedToken token;
    token.content = entry["content"].get<std::string>();
    require_valid_utf8(token.content, "added token content");
    token.id = static_cast<int32_t>(entry["id"].get<int64_t>());
    token.special = flag(entry, "special", false);
    token.single_word = flag(entry, "single_word", false);
    token.lstrip = flag(entry, "lstrip", false);
    token.rstrip = flag(entry, "rstrip", false);
    token.normalized = flag(entry, "normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)), by_first_byte_(256) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;  // an empty token would match everywhere; Hugging Face ignores it too
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::split(std::string_view text, bool match_special) const {
  std::vector<Segment> segments;
  size_t emitted = 0;  // everything before this offset is in `segments`
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* found = nullptr;
    for (size_t index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (text.substr(pos).starts_with(tokens_[index].content)) {
        found = &tokens_[index];
        break;
      }
    }
    if (!found) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + found->content.size();
    pos = end;  // a match that is then rejected is not retried shorter, as in Hugging Face
    if (found->special && !match_special) continue;
    if (found->single_word) {
      const bool word_before = begin > 0 && is_word_character(character_before(text, begin));
      const bool word_after = end < text.size() && is_word_character(character_at(text, end));
      if (word_before || word_after) continue;
    }
    if (found->lstrip) {
      while (begin > emitted && is_whitespace(character_before(text, begin))) begin -= character_before(text, begin).size();
    }
    if (found->rstrip) {
      // The search goes on from the token itself, not past the swallowed whitespace: a token that
      // starts inside that whitespace still matches (Hugging Face finds all matches first).
      while (end < text.size() && is_whitespace(character_at(text, end))) end += character_at(text, end).size();
    }
    if (begin > emitted) segments.push_back({emitted, begin, -1});
    segments.push_back({begin, end, found->id});
    emitted = end;
  }
  if (emitted < text.size()) segments.push_back({emitted, text.size(), -1});
  return segments;
}

}  // namespace meganeura::text
