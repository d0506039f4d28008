// A compiled PCRE2 pattern in UTF-8 mode with Unicode properties (\p{L}, \s and \w follow
// Unicode), as the Hugging Face pre-tokenizer regexes expect.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meganeura::text {

class Regex {
 public:
  // Throws meganeura::Error with PCRE2's message and the offset when `pattern` does not compile.
  explicit Regex(const std::string& pattern);
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // Byte ranges [begin, end) of the successive non-overlapping matches in `text`, which must be
  // valid UTF-8 (checked once by the caller). Empty matches are skipped.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // Whether the pattern matches anywhere in `text` (valid UTF-8), an empty match included.
  bool search(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code*, kept out of this header
};

// `literal` with every regex metacharacter escaped, for Split patterns given as plain strings.
std::string escape_regex(std::string_view literal);

}  // namespace meganeura::text
