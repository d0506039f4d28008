#include "text/utf8.h"

#include "meganeura/error.h"

namespace meganeura::text {
namespace {

bool in_range(unsigned char byte, unsigned char low, unsigned char high) { return byte >= low && byte <= high; }

// How far a possibly truncated or broken sequence at text[pos] is well formed: returns the number
// of bytes that form a valid prefix (at least 1 for the lead byte when it can start a sequence,
// 0 when it cannot) and sets `complete` when that prefix is a whole character.
size_t valid_prefix(std::string_view text, size_t pos, bool& complete) {
  complete = false;
  const auto lead = static_cast<unsigned char>(text[pos]);
  if (lead < 0x80) {
    complete = true;
    return 1;
  }
  size_t needed = 0;
  unsigned char second_low = 0x80, second_high = 0xBF;
  if (in_range(lead, 0xC2, 0xDF)) {
    needed = 2;
  } else if (lead == 0xE0) {
    needed = 3;
    second_low = 0xA0;  // no overlong forms
  } else if (in_range(lead, 0xE1, 0xEC) || in_range(lead, 0xEE, 0xEF)) {
    needed = 3;
  } else if (lead == 0xED) {
    needed = 3;
    second_high = 0x9F;  // no UTF-16 surrogates
  } else if (lead == 0xF0) {
    needed = 4;
    second_low = 0x90;  // no overlong forms
  } else if (in_range(lead, 0xF1, 0xF3)) {
    needed = 4;
  } else if (lead == 0xF4) {
    needed = 4;
    second_high = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  size_t length = 1;
  for (; length < needed; ++length) {
    if (pos + length >= text.size()) return length;
    const auto byte = static_cast<unsigned char>(text[pos + length]);
    const bool ok = length == 1 ? in_range(byte, second_low, second_high) : in_range(byte, 0x80, 0xBF);
    if (!ok) return length;
  }
  complete = true;
  return length;
}

}  // namespace

size_t utf8_sequence_length(std::string_view text, size_t pos) {
  bool complete = false;
  const size_t length = valid_prefix(text, pos, complete);
  return complete ? length : 0;
}

void require_valid_utf8(std::string_view text, std::string_view what) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_sequence_length(text, pos);
    if (length == 0) {
      throw Error(std::string(what) + " is not valid UTF-8 (bad byte sequence at offset " + std::to_string(pos) +
                  "); convert the text to UTF-8 first");
    }
    pos += length;
  }
}

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    bool complete = false;
    const size_t length = valid_prefix(bytes, pos, complete);
    if (complete) {
      out.append(bytes.substr(pos, length));
      pos += length;
    } else {
      out.append(replacement);
      pos += length == 0 ? 1 : length;
    }
  }
  return out;
}

}  // namespace meganeura::text
