// SmolVLM2 image preprocessing: RGB, resize, split into tiles plus a global view, rescale,
// normalise, pad. Sizes follow transformers' arithmetic (Python floats and int() truncation), so
// the same images come out tile for tile.
#include <algorithm>
#include <cmath>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2_processor.h"

namespace meganeura::models {
namespace {

// transformers caps every resized side at this ("4k resolution as absolute maximum").
constexpr int64_t kMaxSide = 4096;

int64_t truncate(double v) { return static_cast<int64_t>(v); }

int64_t ceil_div_as_float(int64_t a, int64_t b) {
  return static_cast<int64_t>(std::ceil(static_cast<double>(a) / static_cast<double>(b)));
}

Image resize_like_processor(const Image& image, int64_t height, int64_t width, ResampleFilter filter) {
  if (height < 1 || width < 1)
    throw Error("SmolVlmProcessor: a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                " image would be resized to " + std::to_string(width) + "x" + std::to_string(height) +
                "; its aspect ratio is too extreme");
  return resize(image, width, height, filter);
}

// Pillow's convert("RGB"), which transformers applies before anything else: gray is repeated and
// alpha is dropped (not composited), so transparent pixels keep their stored colour.
Image rgb_as_pillow_converts(const Image& image) {
  if (image.channels == 3) return image;
  Image rgb{image.width, image.height, 3, {}};
  rgb.pixels.resize(static_cast<size_t>(image.width * image.height * 3));
  const size_t channels = static_cast<size_t>(image.channels);
  for (size_t p = 0; p < static_cast<size_t>(image.width * image.height); ++p)
    for (size_t c = 0; c < 3; ++c) rgb.pixels[p * 3 + c] = image.pixels[p * channels + (channels >= 3 ? c : 0)];
  return rgb;
}

// Both sides up to multiples of the tile side, the aspect ratio followed as transformers does.
std::array<int64_t, 2> tile_multiple_size(int64_t height, int64_t width, int64_t tile) {
  double aspect = static_cast<double>(width) / static_cast<double>(height);
  if (width >= height) {
    width = ceil_div_as_float(width, tile) * tile;
    height = truncate(static_cast<double>(width) / aspect);
    height = ceil_div_as_float(height, tile) * tile;
  } else {
    height = ceil_div_as_float(height, tile) * tile;
    width = truncate(static_cast<double>(height) * aspect);
    width = ceil_div_as_float(width, tile) * tile;
  }
  return {height, width};
}

}  // namespace

std::array<int64_t, 2> smolvlm_resize_size(int64_t height, int64_t width, int64_t longest_edge) {
  if (height < 1 || width < 1 || longest_edge < 1)
    throw Error("smolvlm_resize_size: sizes must be positive (got " + std::to_string(height) + "x" +
                std::to_string(width) + ", longest edge " + std::to_string(longest_edge) + ")");
  double aspect = static_cast<double>(width) / static_cast<double>(height);
  if (width >= height) {
    width = longest_edge;
    height = truncate(static_cast<double>(width) / aspect);
    if (height % 2 != 0) ++height;
  } else {
    height = longest_edge;
    width = truncate(static_cast<double>(height) * aspect);
    if (width % 2 != 0) ++width;
  }
  height = std::max<int64_t>(height, 1);
  width = std::max<int64_t>(width, 1);
  // Then below the absolute maximum, without the even rounding.
  aspect = static_cast<double>(width) / static_cast<double>(height);
  if (width >= height && width > kMaxSide) {
    width = kMaxSide;
    height = truncate(static_cast<double>(width) / aspect);
  } else if (height > width && height > kMaxSide) {
    height = kMaxSide;
    width = truncate(static_cast<double>(height) * aspect);
  }
  return {std::max<int64_t>(height, 1), std::max<int64_t>(width, 1)};
}

ProcessedImages SmolVlmProcessor::preprocess(const Image& input) const {
  const SmolVlmProcessorConfig& c = config_;
  if (input.width < 1 || input.height < 1 || input.channels < 1 || input.channels > 4 ||
      input.pixels.size() != static_cast<size_t>(input.width * input.height * input.channels))
    throw Error("SmolVlmProcessor::preprocess: the image (" + std::to_string(input.width) + "x" +
                std::to_string(input.height) + "x" + std::to_string(input.channels) +
                ") is empty, has no 1 to 4 channels, or its pixels do not match its size");
  if (!c.do_convert_rgb && input.channels != 3)
    throw Error("SmolVlmProcessor::preprocess: do_convert_rgb is false but the image has " +
                std::to_string(input.channels) + " channels; the model takes RGB");

  Image image = c.do_convert_rgb ? rgb_as_pillow_converts(input) : input;
  if (c.do_resize) {
    auto [h, w] = smolvlm_resize_size(image.height, image.width, c.longest_edge);
    image = resize_like_processor(image, h, w, c.resample);
  }
  const int64_t tile = c.max_image_size;
  ProcessedImages out;
  std::vector<Image> frames;
  if (c.do_image_splitting) {
    auto [h, w] = tile_multiple_size(image.height, image.width, tile);
    image = resize_like_processor(image, h, w, c.resample);
    if (image.height > tile || image.width > tile) {
      out.rows = ceil_div_as_float(image.height, tile);
      out.cols = ceil_div_as_float(image.width, tile);
      int64_t tile_h = ceil_div_as_float(image.height, out.rows);
      int64_t tile_w = ceil_div_as_float(image.width, out.cols);
      for (int64_t r = 0; r < out.rows; ++r)
        for (int64_t col = 0; col < out.cols; ++col) {
          int64_t y = r * tile_h, x = col * tile_w;
          frames.push_back(crop(image, x, y, std::min(tile_w, image.width - x), std::min(tile_h, image.height - y)));
        }
      image = resize_like_processor(image, tile, tile, c.resample);  // the global view
    }
    frames.push_back(std::move(image));
  } else {
    frames.push_back(resize_like_processor(image, tile, tile, c.resample));
  }

  // Padding to the largest frame (every frame has one tile's size with this processor's settings).
  out.tiles = static_cast<int64_t>(frames.size());
  for (const Image& frame : frames) {
    out.height = std::max(out.height, frame.height);
    out.width = std::max(out.width, frame.width);
  }
  if (!c.do_pad)
    for (const Image& frame : frames)
      if (frame.height != out.height || frame.width != out.width)
        throw Error("SmolVlmProcessor::preprocess: tiles of different sizes need do_pad");

  // transformers rescales in double and stores float32, then normalises in float32.
  std::array<float, 3> mean{}, std{};
  for (size_t ch = 0; ch < 3; ++ch) {
    mean[ch] = static_cast<float>(c.image_mean[ch]);
    std[ch] = static_cast<float>(c.image_std[ch]);
  }
  std::array<float, 256> level{};
  const size_t plane = static_cast<size_t>(out.height * out.width);
  out.values.assign(static_cast<size_t>(out.tiles) * 3 * plane, 0.0f);
  if (c.do_pad) out.pixel_attention_mask.assign(static_cast<size_t>(out.tiles) * plane, 0);
  for (size_t t = 0; t < frames.size(); ++t) {
    const Image& frame = frames[t];
    for (int64_t ch = 0; ch < 3; ++ch) {
      for (int v = 0; v < 256; ++v) {
        float x = c.do_rescale ? static_cast<float>(static_cast<double>(v) * c.rescale_factor) : static_cast<float>(v);
        level[static_cast<size_t>(v)] = c.do_normalize ? (x - mean[static_cast<size_t>(ch)]) / std[static_cast<size_t>(ch)] : x;
      }
      float* dst = &out.values[(t * 3 + static_cast<size_t>(ch)) * plane];
      for (int64_t y = 0; y < frame.height; ++y)
        for (int64_t x = 0; x < frame.width; ++x)
          dst[static_cast<size_t>(y * out.width + x)] = level[frame.at(y, x, ch)];
    }
    if (c.do_pad)
      for (int64_t y = 0; y < frame.height; ++y)
        std::fill_n(&out.pixel_attention_mask[t * plane + static_cast<size_t>(y * out.width)], frame.width, uint8_t{1});
  }
  return out;
}

}  // namespace meganeura::models
