// The BPE model of tokenizer.json: a vocabulary, ranked merges, and the merge loop that turns one
// pre-tokenized piece into ids. Results are cached per piece, since the same words recur.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace meganeura::text {

// Lets unordered maps keyed by std::string be searched with a std::string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `config` is the "model" value of tokenizer.json. Throws meganeura::Error when the type is not
  // BPE or the vocabulary/merges are malformed.
  explicit BpeModel(const nlohmann::json& config);

  // Appends the ids of one pre-tokenized piece to `out`.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when the id is not in the vocabulary
  int32_t vocab_size() const { return static_cast<int32_t>(tokens_by_id_.size()); }  // largest id + 1
  int32_t vocab_entry_count() const { return static_cast<int32_t>(vocab_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void add_merge(const std::string& left, const std::string& right, int32_t rank);
  // The ids of the piece's characters before any merge (prefix/suffix, byte fallback, unknown).
  std::vector<int32_t> initial_symbols(std::string_view piece) const;
  std::vector<int32_t> merge(std::vector<int32_t> symbols) const;

  TokenIds vocab_;
  std::vector<std::string> tokens_by_id_;  // empty strings where no token has that id
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unknown_id_;
  bool fuse_unknown_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;

  static constexpr size_t kCacheCapacity = 10000;  // then new pieces are computed but not kept
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace meganeura::text
