// Crop and conversion to RGB: the pixel-level steps image processors apply around resizing.
#include <cstring>

#include "meganeura/error.h"
#include "meganeura/image.h"

namespace meganeura {
namespace {

void check_consistent(const Image& image, const char* what) {
  if (image.width < 1 || image.height < 1 || image.channels < 1 || image.channels > 4 ||
      image.pixels.size() != static_cast<size_t>(image.width * image.height * image.channels))
    throw Error(std::string(what) + ": the image (" + std::to_string(image.width) + "x" +
                std::to_string(image.height) + "x" + std::to_string(image.channels) + ", " +
                std::to_string(image.pixels.size()) + " bytes) is empty, has no 1 to 4 channels, or its size does "
                "not match its pixels");
}

// Pillow's alpha_composite of (colour, alpha) over opaque white, with its 7 extra bits of
// precision and rounded divisions by 255.
uint8_t over_white(uint32_t colour, uint32_t alpha) {
  if (alpha == 0) return 255;
  constexpr uint32_t kExtraBits = 7;
  auto divide_255 = [](uint32_t v) { return ((v >> 8) + v) >> 8; };
  uint32_t out_alpha_255 = alpha * 255 + 255 * (255 - alpha);
  uint32_t source_weight = alpha * 255 * 255 * (1u << kExtraBits) / out_alpha_255;
  uint32_t background_weight = 255 * (1u << kExtraBits) - source_weight;
  uint32_t mixed = colour * source_weight + 255 * background_weight;
  return static_cast<uint8_t>(divide_255(mixed + (0x80u << kExtraBits)) >> kExtraBits);
}

}  // namespace

Image crop(const Image& image, int64_t x, int64_t y, int64_t width, int64_t height) {
  check_consistent(image, "crop");
  if (x < 0 || y < 0 || width < 1 || height < 1 || x + width > image.width || y + height > image.height)
    throw Error("crop: the block " + std::to_string(width) + "x" + std::to_string(height) + " at (" +
                std::to_string(x) + ", " + std::to_string(y) + ") does not lie inside the " +
                std::to_string(image.width) + "x" + std::to_string(image.height) + " image");
  Image out{width, height, image.channels, {}};
  out.pixels.resize(static_cast<size_t>(width * height * image.channels));
  const size_t row_bytes = static_cast<size_t>(width * image.channels);
  for (int64_t row = 0; row < height; ++row)
    std::memcpy(&out.pixels[static_cast<size_t>(row) * row_bytes],
                &image.pixels[static_cast<size_t>(((y + row) * image.width + x) * image.channels)], row_bytes);
  return out;
}

Image to_rgb(const Image& image) {
  check_consistent(image, "to_rgb");
  if (image.channels == 3) return image;
  Image out{image.width, image.height, 3, {}};
  out.pixels.resize(static_cast<size_t>(image.width * image.height * 3));
  const size_t pixels = static_cast<size_t>(image.width * image.height);
  const size_t channels = static_cast<size_t>(image.channels);
  for (size_t p = 0; p < pixels; ++p) {
    const uint8_t* in = &image.pixels[p * channels];
    uint8_t* rgb = &out.pixels[p * 3];
    switch (channels) {
      case 1: rgb[0] = rgb[1] = rgb[2] = in[0]; break;
      case 2: rgb[0] = rgb[1] = rgb[2] = over_white(in[0], in[1]); break;
      default:
        for (int c = 0; c < 3; ++c) rgb[c] = over_white(in[c], in[3]);
        break;
    }
  }
  return out;
}

}  // namespace meganeura
