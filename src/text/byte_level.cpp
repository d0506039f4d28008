#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace meganeura::text {
namespace {

struct Table {
  std::array<char32_t, 256> character_of_byte{};
  std::array<std::string, 256> utf8_of_byte;
  static constexpr char32_t kMaxCharacter = 256 + 256;
  std::array<int, kMaxCharacter> byte_of{};

  Table() {
    byte_of.fill(-1);
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    char32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = printable(b) ? static_cast<char32_t>(b) : next_extra++;
      character_of_byte[b] = c;
      append_code_point(utf8_of_byte[b], c);
      byte_of[c] = b;
    }
  }
};

const Table& table() {
  static const Table instance;
  return instance;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const Table& t = table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char byte : bytes) out += t.utf8_of_byte[static_cast<unsigned char>(byte)];
  return out;
}

std::optional<unsigned char> byte_of_character(char32_t code_point) {
  const Table& t = table();
  if (code_point >= Table::kMaxCharacter || t.byte_of[code_point] < 0) return std::nullopt;
  return static_cast<unsigned char>(t.byte_of[code_point]);
}

std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  std::string out;
  for (size_t pos = 0; pos < token.size();) {
    const size_t length = utf8_sequence_length(token, pos);
    if (length == 0 || length > 2) return std::nullopt;  // table characters are below U+0800
    char32_t cp = static_cast<unsigned char>(token[pos]);
    if (length == 2) cp = ((cp & 0x1F) << 6) | (static_cast<unsigned char>(token[pos + 1]) & 0x3F);
    const auto byte = byte_of_character(cp);
    if (!byte) return std::nullopt;
    out += static_cast<char>(*byte);
    pos += length;
  }
  return out;
}

}  // namespace meganeura::text
