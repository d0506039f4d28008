// SHA-256 (FIPS 180-4), used for shader-cache keys and entry checksums.
//
//   gpu::Sha256 hash;
//   hash.update("glsl source");
//   hash.update(options_text);
//   std::string key = gpu::to_hex(hash.finish());  // 64 hex digits
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace meganeura::gpu {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::byte> bytes);
  void update(std::string_view text);
  // Returns the digest; the object must not be updated afterwards.
  Sha256Digest finish();

  static Sha256Digest of(std::span<const std::byte> bytes);

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string to_hex(std::span<const uint8_t> bytes);

}  // namespace meganeura::gpu
