// Resampling that matches Pillow's Image.resize bit for bit on 8-bit images (image processors of
// Hugging Face models resize with Pillow, so a model's inputs depend on its exact rounding).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "meganeura/error.h"
#include "meganeura/image.h"

namespace meganeura {
namespace {

// Coefficients are fixed point with 22 fractional bits: 8-bit samples times coefficients summed
// over the widest kernel still fit a 32-bit accumulator.
constexpr int kPrecisionBits = 22;

struct Filter {
  double support;
  double (*weight)(double);
};

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= std::numbers::pi;
  return std::sin(x) / x;
}

double box_weight(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double triangle_weight(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_weight(double x) {
  x = std::fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x *= std::numbers::pi;
  // The reference takes the window's constants in single precision; so must we, to round alike.
  constexpr double a = static_cast<double>(0.54f), b = static_cast<double>(0.46f);
  return std::sin(x) / x * (a + b * std::cos(x));
}

// Keys' cubic convolution with a = -0.5.
double cubic_weight(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

double lanczos_weight(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

Filter filter_of(ResampleFilter filter) {
  switch (filter) {
    case ResampleFilter::box: return {0.5, box_weight};
    case ResampleFilter::bilinear: return {1.0, triangle_weight};
    case ResampleFilter::hamming: return {1.0, hamming_weight};
    case ResampleFilter::bicubic: return {2.0, cubic_weight};
    case ResampleFilter::lanczos: return {3.0, lanczos_weight};
    case ResampleFilter::nearest: break;
  }
  throw Error("resize: nearest has no convolution filter");
}

// For each output position: the first source index, how many follow, and their fixed-point weights.
struct Kernels {
  int64_t width = 0;  // weights per output position (unused tail is zero)
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<int32_t> weights;
};

Kernels make_kernels(int64_t in_size, int64_t out_size, const Filter& filter) {
  double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  // Downscaling widens the filter to cover every source pixel (antialiasing); upscaling does not.
  double filter_scale = scale < 1.0 ? 1.0 : scale;
  double support = filter.support * filter_scale;
  Kernels k;
  k.width = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  k.first.resize(static_cast<size_t>(out_size));
  k.count.resize(static_cast<size_t>(out_size));
  k.weights.assign(static_cast<size_t>(out_size * k.width), 0);
  std::vector<double> w(static_cast<size_t>(k.width));
  // Multiplying by the reciprocal (not dividing) keeps the reference's double rounding.
  const double inverse_scale = 1.0 / filter_scale;
  for (int64_t o = 0; o < out_size; ++o) {
    double center = (static_cast<double>(o) + 0.5) * scale;
    // Truncation toward zero, then clamping, as the reference does.
    int64_t lo = static_cast<int64_t>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int64_t hi = static_cast<int64_t>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    int64_t n = hi - lo;
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      w[static_cast<size_t>(i)] = filter.weight((static_cast<double>(i + lo) - center + 0.5) * inverse_scale);
      total += w[static_cast<size_t>(i)];
    }
    for (int64_t i = 0; i < n; ++i) {
      double normalised = total != 0.0 ? w[static_cast<size_t>(i)] / total : w[static_cast<size_t>(i)];
      double fixed = normalised * static_cast<double>(1 << kPrecisionBits);
      k.weights[static_cast<size_t>(o * k.width + i)] = static_cast<int32_t>(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
    }
    k.first[static_cast<size_t>(o)] = lo;
    k.count[static_cast<size_t>(o)] = n;
  }
  return k;
}

uint8_t clip8(int32_t accumulated) {
  int32_t v = accumulated >> kPrecisionBits;  // floor, so small negatives become -1 and then 0
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Along rows; the channel count is a constant so that the per-tap loop unrolls.
template <size_t kChannels>
void horizontal_pass(const Image& in, Image& out, const Kernels& k, int32_t half) {
  const size_t in_row = static_cast<size_t>(in.width) * kChannels;
  const size_t out_row = static_cast<size_t>(out.width) * kChannels;
  for (int64_t y = 0; y < out.height; ++y) {
    const uint8_t* src = &in.pixels[static_cast<size_t>(y) * in_row];
    uint8_t* dst = &out.pixels[static_cast<size_t>(y) * out_row];
    for (int64_t x = 0; x < out.width; ++x) {
      const int32_t* weights = &k.weights[static_cast<size_t>(x * k.width)];
      const uint8_t* first = src + static_cast<size_t>(k.first[static_cast<size_t>(x)]) * kChannels;
      int32_t sums[kChannels];
      for (size_t c = 0; c < kChannels; ++c) sums[c] = half;
      const int64_t count = k.count[static_cast<size_t>(x)];
      for (int64_t i = 0; i < count; ++i)
        for (size_t c = 0; c < kChannels; ++c) sums[c] += int32_t{first[static_cast<size_t>(i) * kChannels + c]} * weights[i];
      for (size_t c = 0; c < kChannels; ++c) dst[static_cast<size_t>(x) * kChannels + c] = clip8(sums[c]);
    }
  }
}

// One separable pass: horizontal changes the width, otherwise the height.
Image resample_axis(const Image& in, int64_t out_size, const Filter& filter, bool horizontal) {
  const size_t channels = static_cast<size_t>(in.channels);
  Image out{horizontal ? out_size : in.width, horizontal ? in.height : out_size, in.channels, {}};
  out.pixels.resize(static_cast<size_t>(out.width * out.height) * channels);
  Kernels k = make_kernels(horizontal ? in.width : in.height, out_size, filter);
  // 32-bit sums as in the reference: 255 times the largest total |weight| (about 1.3, Lanczos)
  // in 22-bit fixed point stays below 2^31.
  const int32_t half = int32_t{1} << (kPrecisionBits - 1);
  const size_t in_row = static_cast<size_t>(in.width) * channels;
  const size_t out_row = static_cast<size_t>(out.width) * channels;
  if (horizontal) {
    switch (channels) {
      case 1: horizontal_pass<1>(in, out, k, half); break;
      case 2: horizontal_pass<2>(in, out, k, half); break;
      case 3: horizontal_pass<3>(in, out, k, half); break;
      default: horizontal_pass<4>(in, out, k, half); break;
    }
  } else {
    std::vector<int32_t> sums(out_row);
    for (int64_t y = 0; y < out.height; ++y) {
      const int32_t* weights = &k.weights[static_cast<size_t>(y * k.width)];
      std::fill(sums.begin(), sums.end(), half);
      for (int64_t i = 0; i < k.count[static_cast<size_t>(y)]; ++i) {
        const uint8_t* src = &in.pixels[static_cast<size_t>(k.first[static_cast<size_t>(y)] + i) * in_row];
        const int32_t w = weights[i];
        for (size_t j = 0; j < out_row; ++j) sums[j] += int32_t{src[j]} * w;
      }
      uint8_t* dst = &out.pixels[static_cast<size_t>(y) * out_row];
      for (size_t j = 0; j < out_row; ++j) dst[j] = clip8(sums[j]);
    }
  }
  return out;
}

// Source pixel positions are stepped in double precision from the first pixel's centre, as Pillow's
// affine scaling does, so rounding ties fall the same way.
Image resize_nearest(const Image& in, int64_t width, int64_t height) {
  Image out{width, height, in.channels, {}};
  out.pixels.assign(static_cast<size_t>(width * height * in.channels), 0);
  double x_step = static_cast<double>(in.width) / static_cast<double>(width);
  double y_step = static_cast<double>(in.height) / static_cast<double>(height);
  std::vector<int64_t> source_x(static_cast<size_t>(width), -1);
  double xo = x_step * 0.5;
  for (int64_t x = 0; x < width; ++x, xo += x_step) {
    int64_t sx = xo < 0.0 ? -1 : static_cast<int64_t>(xo);
    if (sx >= 0 && sx < in.width) source_x[static_cast<size_t>(x)] = sx;
  }
  double yo = y_step * 0.5;
  for (int64_t y = 0; y < height; ++y, yo += y_step) {
    int64_t sy = yo < 0.0 ? -1 : static_cast<int64_t>(yo);
    if (sy < 0 || sy >= in.height) continue;
    for (int64_t x = 0; x < width; ++x) {
      int64_t sx = source_x[static_cast<size_t>(x)];
      if (sx < 0) continue;
      for (int64_t c = 0; c < in.channels; ++c) out.at(y, x, c) = in.at(sy, sx, c);
    }
  }
  return out;
}

uint8_t multiply_div255(uint32_t a, uint32_t b) {
  uint32_t t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// Colour times alpha (the last channel), rounded as Pillow's RGBA → RGBa conversion.
Image premultiply(Image image) {
  const int64_t alpha = image.channels - 1;
  for (size_t p = 0; p < image.pixels.size(); p += static_cast<size_t>(image.channels))
    for (int64_t c = 0; c < alpha; ++c) image.pixels[p + c] = multiply_div255(image.pixels[p + c], image.pixels[p + alpha]);
  return image;
}

// The inverse, truncating as Pillow's RGBa → RGBA conversion (alpha 0 and 255 keep the colour).
Image unpremultiply(Image image) {
  const int64_t alpha = image.channels - 1;
  for (size_t p = 0; p < image.pixels.size(); p += static_cast<size_t>(image.channels)) {
    uint32_t a = image.pixels[p + alpha];
    if (a == 0 || a == 255) continue;
    for (int64_t c = 0; c < alpha; ++c) {
      uint32_t v = 255u * image.pixels[p + c] / a;
      image.pixels[p + c] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
  return image;
}

}  // namespace

std::string resample_filter_name(ResampleFilter filter) {
  switch (filter) {
    case ResampleFilter::nearest: return "nearest";
    case ResampleFilter::lanczos: return "lanczos";
    case ResampleFilter::bilinear: return "bilinear";
    case ResampleFilter::bicubic: return "bicubic";
    case ResampleFilter::box: return "box";
    case ResampleFilter::hamming: return "hamming";
  }
  return "unknown";
}

ResampleFilter resample_filter_from_code(int64_t code) {
  if (code < 0 || code > 5)
    throw Error("resample " + std::to_string(code) +
                " is not a Pillow filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)");
  return static_cast<ResampleFilter>(code);
}

Image resize(const Image& image, int64_t width, int64_t height, ResampleFilter filter) {
  if (width < 1 || height < 1)
    throw Error("resize: target size " + std::to_string(width) + "x" + std::to_string(height) +
                " must be at least 1x1");
  if (image.width < 1 || image.height < 1 || image.channels < 1 ||
      image.pixels.size() != static_cast<size_t>(image.width * image.height * image.channels))
    throw Error("resize: the source image is empty or its pixel count does not match " +
                std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                std::to_string(image.channels));
  if (width == image.width && height == image.height) return image;
  if (filter == ResampleFilter::nearest) return resize_nearest(image, width, height);
  const Filter f = filter_of(filter);
  bool has_alpha = image.channels == 2 || image.channels == 4;
  Image current = has_alpha ? premultiply(image) : image;
  if (width != current.width) current = resample_axis(current, width, f, /*horizontal=*/true);
  if (height != current.height) current = resample_axis(current, height, f, /*horizontal=*/false);
  return has_alpha ? unpremultiply(std::move(current)) : current;
}

}  // namespace meganeura
