// Pre-tokenization: cuts text into the pieces that the BPE model then encodes one by one, following
// the "pre_tokenizer" entry of tokenizer.json (Sequence, Digits, ByteLevel, Split).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/regex.h"

namespace meganeura::text {

// How the matches of a splitting pattern become pieces (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Pieces of `text` around the `matches` of a pattern (sorted, non-overlapping byte ranges);
// `invert` swaps the roles of matches and the text between them. Empty pieces are dropped.
std::vector<std::string_view> split_around(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches,
                                           SplitBehavior behavior, bool invert = false);

class PreTokenizer {
 public:
  // `config` is the "pre_tokenizer" value of tokenizer.json; null means no pre-tokenization.
  // Throws meganeura::Error naming an unsupported type or option.
  explicit PreTokenizer(const nlohmann::json& config);
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // `text` must be valid UTF-8. Pieces after a ByteLevel step are in the byte-level alphabet.
  std::vector<std::string> split(std::string_view text) const;

 private:
  struct Step;
  void add_steps(const nlohmann::json& config);
  std::vector<Step> steps_;
};

}  // namespace meganeura::text
