// The format decoders behind decode_image; each checks its own signature.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "meganeura/image.h"

namespace meganeura::image_codecs {

bool has_png_signature(std::span<const uint8_t> bytes);
bool has_jpeg_signature(std::span<const uint8_t> bytes);

Image decode_png(std::span<const uint8_t> bytes, const std::string& label);
Image decode_jpeg(std::span<const uint8_t> bytes, const std::string& label);

// `label` names the destination in error messages.
std::vector<uint8_t> encode_png_bytes(const Image& image, const std::string& label);

}  // namespace meganeura::image_codecs
