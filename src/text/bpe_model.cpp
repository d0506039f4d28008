#include "text/bpe_model.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "meganeura/error.h"
#include "text/utf8.h"

namespace meganeura::text {
namespace {

std::optional<std::string> optional_string(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw Error(std::string("tokenizer.json: model.") + key + " must be a string or null");
  return it->get<std::string>();
}

bool optional_bool(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw Error(std::string("tokenizer.json: model.") + key + " must be true or false");
  return it->get<bool>();
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& config) {
  if (!config.is_object()) throw Error("tokenizer.json: \"model\" must be an object");
  const std::string type = config.value("type", std::string("BPE"));
  if (type != "BPE") {
    throw Error("tokenizer.json: model type \"" + type +
                "\" is not supported; only byte-level BPE tokenizers (\"type\": \"BPE\") can be loaded");
  }
  if (const auto dropout = config.find("dropout"); dropout != config.end() && !dropout->is_null()) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0)
      throw Error("tokenizer.json: BPE dropout " + dropout->dump() + " is not supported (it makes encoding random); set it to null");
  }
  fuse_unknown_ = optional_bool(config, "fuse_unk");
  byte_fallback_ = optional_bool(config, "byte_fallback");
  ignore_merges_ = optional_bool(config, "ignore_merges");
  continuing_subword_prefix_ = optional_string(config, "continuing_subword_prefix").value_or("");
  end_of_word_suffix_ = optional_string(config, "end_of_word_suffix").value_or("");

  const auto vocab = config.find("vocab");
  if (vocab == config.end() || !vocab->is_object())
    throw Error("tokenizer.json: model.vocab must be an object mapping tokens to ids");
  for (const auto& [token, id_value] : vocab->items()) {
    if (!id_value.is_number_integer() || id_value.get<int64_t>() < 0 || id_value.get<int64_t>() > INT32_MAX)
      throw Error("tokenizer.json: model.vocab[\"" + token + "\"] must be a non-negative integer id, got " + id_value.dump());
    const auto id = static_cast<int32_t>(id_value.get<int64_t>());
    vocab_.emplace(token, id);
    if (static_cast<size_t>(id) >= tokens_by_id_.size()) tokens_by_id_.resize(static_cast<size_t>(id) + 1);
    tokens_by_id_[static_cast<size_t>(id)] = token;
  }

  if (const auto unknown = optional_string(config, "unk_token")) {
    const auto it = vocab_.find(*unknown);
    if (it == vocab_.end()) throw Error("tokenizer.json: model.unk_token \"" + *unknown + "\" is not in model.vocab");
    unknown_id_ = it->second;
  }

  const auto merges = config.find("merges");
  if (merges == config.end() || merges->is_null()) return;
  if (!merges->is_array()) throw Error("tokenizer.json: model.merges must be an array");
  int32_t rank = 0;
  for (const auto& entry : *merges) {
    if (entry.is_string()) {
      // Older files write a merge as "left right"; tokens never contain a space in that form.
      const std::string text = entry.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
        throw Error("tokenizer.json: merge " + entry.dump() + " must be two tokens separated by one space");
      add_merge(text.substr(0, space), text.substr(space + 1), rank++);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      add_merge(entry[0].get<std::string>(), entry[1].get<std::string>(), rank++);
    } else {
      throw Error("tokenizer.json: merge " + entry.dump() + " must be \"left right\" or [\"left\", \"right\"]");
    }
  }
}

void BpeModel::add_merge(const std::string& left, const std::string& right, int32_t rank) {
  const auto left_id = vocab_.find(left), right_id = vocab_.find(right);
  if (left_id == vocab_.end() || right_id == vocab_.end())
    throw Error("tokenizer.json: merge \"" + left + "\" + \"" + right + "\" uses a token missing from model.vocab");
  std::string merged = left;
  const bool has_prefix = !continuing_subword_prefix_.empty() && right.starts_with(continuing_subword_prefix_);
  merged += has_prefix ? right.substr(continuing_subword_prefix_.size()) : right;
  const auto result = vocab_.find(merged);
  if (result == vocab_.end())
    throw Error("tokenizer.json: merge \"" + left + "\" + \"" + right + "\" makes \"" + merged + "\", which is not in model.vocab");
  // The first occurrence of a pair wins, as with the ranks Hugging Face builds.
  merges_.try_emplace(pair_key(left_id->second, right_id->second), Merge{rank, result->second});
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_by_id_.size()) return nullptr;
  const std::string& token = tokens_by_id_[static_cast<size_t>(id)];
  if (token.empty()) {  // a hole in the id range, unless the empty string really is this token
    const auto it = vocab_.find(token);
    if (it == vocab_.end() || it->second != id) return nullptr;
  }
  return &token;
}

std::vector<int32_t> BpeModel::initial_symbols(std::string_view piece) const {
  std::vector<int32_t> symbols;
  std::optional<int32_t> pending_unknown;  // an unknown character not yet emitted (fuse_unk joins runs)
  auto flush_unknown = [&] {
    if (pending_unknown) symbols.push_back(*pending_unknown);
    pending_unknown.reset();
  };
  std::string candidate;
  for (size_t pos = 0; pos < piece.size();) {
    size_t length = utf8_sequence_length(piece, pos);
    if (length == 0) length = 1;  // pieces are valid UTF-8; this only guards against a bad table
    const std::string_view character = piece.substr(pos, length);
    candidate.clear();
    if (pos != 0) candidate += continuing_subword_prefix_;
    candidate += character;
    if (pos + length == piece.size()) candidate += end_of_word_suffix_;
    pos += length;

    if (const auto it = vocab_.find(candidate); it != vocab_.end()) {
      flush_unknown();
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (char byte : character) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(byte));
        const auto it = vocab_.find(std::string_view(name));
        if (it == vocab_.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == character.size()) {
        flush_unknown();
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (!unknown_id_) continue;  // without an unknown token, characters outside the vocabulary vanish
    if (!fuse_unknown_) flush_unknown();
    pending_unknown = unknown_id_;
  }
  flush_unknown();
  return symbols;
}

std::vector<int32_t> BpeModel::merge(std::vector<int32_t> symbols) const {
  // A doubly linked list over the symbols; merging marks the right symbol dead and rewrites the left.
  const int n = static_cast<int>(symbols.size());
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int position;  // the left symbol
    int32_t left, right;  // the pair when queued; stale entries no longer match
    int32_t result;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t a = symbols[left], b = symbols[next[left]];
    if (const auto it = merges_.find(pair_key(a, b)); it != merges_.end()) queue.push({it->second.rank, left, a, b, it->second.result});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int left = top.position;
    if (!alive[left] || next[left] < 0) continue;
    const int right = next[left];
    if (symbols[left] != top.left || symbols[right] != top.right) continue;
    symbols[left] = top.result;
    alive[right] = false;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    consider(prev[left]);
    consider(left);
  }
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i)
    if (alive[i]) out.push_back(symbols[i]);
  return out;
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(piece); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge(initial_symbols(piece));
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(piece), std::move(ids));
}

}  // namespace meganeura::text
