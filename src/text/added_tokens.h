// Added tokens (the "added_tokens" of tokenizer.json, special tokens among them): they are found in
// the text before pre-tokenization and each becomes exactly its own id, never split.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace meganeura::text {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool single_word = false;  // only matches when not inside a word
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // swallows the whitespace on its right
  bool normalized = false;   // matched after normalization (there is no normalizer here, so later)
};

// Parses the "added_tokens" array of tokenizer.json; throws meganeura::Error when it is malformed.
std::vector<AddedToken> parse_added_tokens(const nlohmann::json& config);

// Finds added tokens in text: leftmost match first, the longest token at that position, the search
// resuming after it (the semantics of Hugging Face's leftmost-longest Aho-Corasick).
class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  struct Segment {
    size_t begin, end;
    int32_t id;  // -1: plain text to pre-tokenize
  };
  // Segments covering `text` in order; plain text segments are never empty. With
  // `match_special` false, special tokens are left in the text (to be encoded as ordinary text).
  std::vector<Segment> split(std::string_view text, bool match_special = true) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::vector<size_t>> by_first_byte_;  // indices into tokens_, longest first
};

}  // namespace meganeura::text
