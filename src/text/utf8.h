// UTF-8 helpers for the tokenizer: validation, code point encoding and the lossy decoding that
// turns byte sequences from byte-level tokens back into text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace meganeura::text {

// Length of the valid UTF-8 sequence starting at text[pos], or 0 when it is not valid there.
size_t utf8_sequence_length(std::string_view text, size_t pos);

// Throws meganeura::Error naming the byte offset of the first invalid sequence; `what` says
// which input is being checked ("encode() text").
void require_valid_utf8(std::string_view text, std::string_view what);

void append_code_point(std::string& out, char32_t code_point);

// Decodes `bytes` as UTF-8, replacing each maximal invalid subsequence with U+FFFD, the
// substitution Unicode recommends (and Rust's String::from_utf8_lossy performs).
std::string utf8_lossy(std::string_view bytes);

}  // namespace meganeura::text
