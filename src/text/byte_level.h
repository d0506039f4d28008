// The GPT-2 byte-to-character table behind byte-level BPE: every byte is shown as one printable
// Unicode character (printable Latin-1 bytes as themselves, the rest as U+0100 onwards), so that
// BPE works on text without spaces or control characters.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace meganeura::text {

// Each byte of `bytes` replaced by its character, UTF-8 encoded ("a b" -> "aĠb").
std::string bytes_to_byte_level(std::string_view bytes);

// The byte a character stands for, or nothing when `code_point` is not in the table.
std::optional<unsigned char> byte_of_character(char32_t code_point);

// The inverse of bytes_to_byte_level for one token: its bytes when every character is in the
// table, nothing otherwise (the caller then keeps the token's own UTF-8, as Hugging Face does).
std::optional<std::string> byte_level_to_bytes(std::string_view token);

}  // namespace meganeura::text
