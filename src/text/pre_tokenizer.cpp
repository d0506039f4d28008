#include "text/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "meganeura/error.h"
#include "text/byte_level.h"

namespace meganeura::text {
namespace {

// The GPT-2 pattern that ByteLevel(use_regex=true) splits with: contractions, letters, numbers and
// other symbols each with at most one leading space, then runs of whitespace.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const nlohmann::json& value) {
  const std::string name = value.is_string() ? value.get<std::string>() : "";
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  throw Error("tokenizer.json: Split pre-tokenizer has unknown behavior " + value.dump() +
              "; expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

bool bool_option(const nlohmann::json& config, const char* key, bool fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw Error(std::string("tokenizer.json: pre-tokenizer option \"") + key + "\" must be true or false");
  return it->get<bool>();
}

}  // namespace

std::vector<std::string_view> split_around(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches,
                                           SplitBehavior behavior, bool invert) {
  // The whole text as alternating ranges, each flagged as a match or not.
  struct Range {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Range> ranges;
  size_t cursor = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > cursor) ranges.push_back({cursor, begin, invert});
    ranges.push_back({begin, end, !invert});
    cursor = end;
  }
  if (cursor < text.size()) ranges.push_back({cursor, text.size(), invert});

  std::vector<Range> pieces;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const Range& r : ranges)
        if (!r.is_match) pieces.push_back(r);
      break;
    case SplitBehavior::Isolated:
      pieces = ranges;
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Range& r : ranges) {
        if (r.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = r.end;
        } else {
          pieces.push_back(r);
        }
        previous_match = r.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool next_match = false;
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        if (it->is_match && !next_match && !pieces.empty()) {
          pieces.back().begin = it->begin;
        } else {
          pieces.push_back(*it);
        }
        next_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (const Range& r : ranges) {
        if (r.is_match == previous_match && !pieces.empty()) {
          pieces.back().end = r.end;
        } else {
          pieces.push_back(r);
        }
        previous_match = r.is_match;
      }
      break;
    }
  }
  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const Range& r : pieces)
    if (r.end > r.begin) out.push_back(text.substr(r.begin, r.end - r.begin));
  return out;
}

struct PreTokenizer::Step {
  enum class Kind { Split, ByteLevel } kind;
  std::optional<Regex> regex;  // Split: the pattern; ByteLevel: the GPT-2 pattern when use_regex
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;
};

PreTokenizer::PreTokenizer(const nlohmann::json& config) {
  if (!config.is_null()) add_steps(config);
}
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::add_steps(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string())
    throw Error("tokenizer.json: a pre-tokenizer must be an object with a \"type\" string, got " + config.dump());
  const std::string type = config["type"].get<std::string>();
  if (type == "Sequence") {
    const auto it = config.find("pretokenizers");
    if (it == config.end() || !it->is_array())
      throw Error("tokenizer.json: Sequence pre-tokenizer needs a \"pretokenizers\" array");
    for (const auto& child : *it) add_steps(child);
  } else if (type == "Digits") {
    // Rust's char::is_numeric is the Unicode N category, which \p{N} matches.
    const bool individual = bool_option(config, "individual_digits", false);
    steps_.push_back({Step::Kind::Split, Regex(individual ? R"(\p{N})" : R"(\p{N}+)"), SplitBehavior::Isolated});
  } else if (type == "ByteLevel") {
    Step step{Step::Kind::ByteLevel, std::nullopt};
    step.add_prefix_space = bool_option(config, "add_prefix_space", true);
    if (bool_option(config, "use_regex", true)) step.regex.emplace(kGpt2Pattern);
    steps_.push_back(std::move(step));
  } else if (type == "Split") {
    const auto& pattern = config.value("pattern", nlohmann::json());
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      regex = escape_regex(pattern["String"].get<std::string>());
    } else {
      throw Error("tokenizer.json: Split pre-tokenizer needs \"pattern\": {\"Regex\": ...} or {\"String\": ...}, got " +
                  pattern.dump());
    }
    Step step{Step::Kind::Split, Regex(regex), parse_behavior(config.value("behavior", nlohmann::json()))};
    step.invert = bool_option(config, "invert", false);
    steps_.push_back(std::move(step));
  } else {
    throw Error("tokenizer.json: pre-tokenizer type \"" + type +
                "\" is not supported (supported: Sequence, Digits, ByteLevel, Split)");
  }
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string> pieces;
  if (!text.empty()) pieces.emplace_back(text);
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    next.reserve(pieces.size());
    for (std::string& piece : pieces) {
      if (step.kind == Step::Kind::Split) {
        for (std::string_view part : split_around(piece, step.regex->find_all(piece), step.behavior, step.invert))
          next.emplace_back(part);
        continue;
      }
      if (step.add_prefix_space && piece.front() != ' ') piece.insert(piece.begin(), ' ');
      if (!step.regex) {
        next.push_back(bytes_to_byte_level(piece));
        continue;
      }
      for (std::string_view part : split_around(piece, step.regex->find_all(piece), SplitBehavior::Isolated))
        next.push_back(bytes_to_byte_level(part));
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace meganeura::text
