// meganeura/image.h — 8-bit images in memory, PNG/JPEG decoding and PNG encoding.
//
//   meganeura::Image photo = meganeura::read_image("cat.jpg");   // PNG or JPEG, by signature
//   // photo.width, photo.height, photo.channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)
//   uint8_t red_of_pixel_0_1 = photo.at(0, 1, 0);                  // row 0, column 1, channel 0
//   meganeura::write_png("cat.png", photo);
//
//   // Pillow's Image.resize, bit for bit on 8-bit images; crops; RGB over a white background.
//   meganeura::Image small = meganeura::resize(photo, 64, 48, meganeura::ResampleFilter::lanczos);
//   meganeura::Image corner = meganeura::crop(small, /*x=*/0, /*y=*/0, /*width=*/32, /*height=*/24);
//   meganeura::Image rgb = meganeura::to_rgb(corner);
//
// Pixels are row-major HWC, one byte per channel. Decoding keeps the file's channels (palette
// images become RGB, or RGBA when the palette has transparency) and reduces 16-bit samples to their
// high byte; colour profiles and gamma chunks are not applied, as common Python imaging does.
// Anything unreadable (truncated, corrupt, not an image, CMYK JPEG) is a meganeura::Error naming
// the file and the problem.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace meganeura {

struct Image {
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels bytes, row-major HWC

  uint8_t& at(int64_t row, int64_t column, int64_t channel) {
    return pixels[static_cast<size_t>((row * width + column) * channels + channel)];
  }
  uint8_t at(int64_t row, int64_t column, int64_t channel) const {
    return pixels[static_cast<size_t>((row * width + column) * channels + channel)];
  }
};

// Reads a PNG or JPEG file (chosen by its first bytes, not its name).
Image read_image(const std::string& path);

// Decodes PNG or JPEG bytes; `label` names the source in error messages.
Image decode_image(std::span<const uint8_t> bytes, const std::string& label);

// Writes 1, 2, 3 or 4 channels as an 8-bit PNG (gray, gray+alpha, RGB, RGBA).
void write_png(const std::string& path, const Image& image);

// The same PNG bytes in memory.
std::vector<uint8_t> encode_png(const Image& image);

// Resampling filters, numbered as Pillow's Image.Resampling (and so as "resample" in Hugging Face
// image processor configs).
enum class ResampleFilter { nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5 };

// "lanczos", ...; resample_filter_from_code throws Error for a number outside 0..5.
std::string resample_filter_name(ResampleFilter filter);
ResampleFilter resample_filter_from_code(int64_t code);

// Resizes to width x height exactly as Pillow's Image.resize does for 8-bit images: separable
// filtering (horizontal pass, then vertical) with the filter's support widened by the downscale
// factor, coefficients normalised and rounded to 22-bit fixed point, each pass rounded and clipped
// to 8 bits; nearest picks source pixels as Pillow's affine scaling does. Images with alpha
// (2 or 4 channels) are filtered premultiplied, as Pillow does. The same size returns a copy.
Image resize(const Image& image, int64_t width, int64_t height, ResampleFilter filter);

// The width x height block whose top-left corner is (x, y); it must lie inside the image.
Image crop(const Image& image, int64_t x, int64_t y, int64_t width, int64_t height);

// Three channels: gray is repeated, alpha is composited over white with Pillow's
// Image.alpha_composite rounding, RGB is copied.
Image to_rgb(const Image& image);

}  // namespace meganeura
