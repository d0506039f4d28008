#include "gpu/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace meganeura::gpu {
namespace {

std::string hex_of(std::string_view text) {
  Sha256 hash;
  hash.update(text);
  return to_hex(hash.finish());
}

// Vectors from FIPS 180-4 examples and NIST's SHA-256 test set.
TEST(Sha256, MatchesPublishedVectors) {
  EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex_of(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecewiseUpdatesEqualOneUpdate) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += char('a' + (i * 7919) % 26);
  // Splits around the 55/56/64-byte padding boundaries give the same digest as one update.
  for (size_t split : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 128u, 299u}) {
    Sha256 hash;
    hash.update(std::string_view(text).substr(0, split));
    hash.update(std::string_view(text).substr(split));
    EXPECT_EQ(to_hex(hash.finish()), hex_of(text)) << "split at " << split;
  }
  EXPECT_NE(hex_of(text), hex_of(text.substr(1)));
}

}  // namespace
}  // namespace meganeura::gpu
