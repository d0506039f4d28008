// Resizing, cropping and RGB conversion: properties that hold for Pillow's resampling (identity,
// constants, 2:1 box and nearest reductions worked out by hand, alpha that does not bleed).
#include <gtest/gtest.h>

#include <random>

#include "meganeura/error.h"
#include "meganeura/image.h"

namespace {

using meganeura::Image;
using meganeura::ResampleFilter;

const ResampleFilter kAllFilters[] = {ResampleFilter::nearest, ResampleFilter::lanczos, ResampleFilter::bilinear,
                                      ResampleFilter::bicubic, ResampleFilter::box, ResampleFilter::hamming};

Image random_image(int64_t width, int64_t height, int64_t channels, uint32_t seed) {
  std::mt19937 rng(seed);
  Image image{width, height, channels, {}};
  image.pixels.resize(static_cast<size_t>(width * height * channels));
  for (auto& p : image.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return image;
}

TEST(Resize, SameSizeIsACopy) {
  Image image = random_image(9, 5, 3, 1);
  for (ResampleFilter filter : kAllFilters) EXPECT_EQ(meganeura::resize(image, 9, 5, filter).pixels, image.pixels);
}

TEST(Resize, ConstantImagesStayConstant) {
  std::mt19937 rng(2);
  for (ResampleFilter filter : kAllFilters) {
    for (int trial = 0; trial < 3; ++trial) {
      Image image{static_cast<int64_t>(rng() % 40 + 1), static_cast<int64_t>(rng() % 40 + 1), 3, {}};
      uint8_t colour[3] = {static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng())};
      for (int64_t p = 0; p < image.width * image.height; ++p) image.pixels.insert(image.pixels.end(), colour, colour + 3);
      int64_t width = rng() % 50 + 1, height = rng() % 50 + 1;
      Image out = meganeura::resize(image, width, height, filter);
      ASSERT_EQ(out.pixels.size(), static_cast<size_t>(width * height * 3));
      for (size_t i = 0; i < out.pixels.size(); ++i)
        ASSERT_EQ(out.pixels[i], colour[i % 3]) << meganeura::resample_filter_name(filter) << " " << i;
    }
  }
}

// Halving with the box filter averages pixel pairs in each pass, rounding halves up after each.
TEST(Resize, BoxHalvingAveragesPairsPassByPass) {
  Image image = random_image(12, 10, 3, 3);
  Image out = meganeura::resize(image, 6, 5, ResampleFilter::box);
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 6; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        auto row_mean = [&](int64_t row) { return (image.at(row, 2 * x, c) + image.at(row, 2 * x + 1, c) + 1) / 2; };
        EXPECT_EQ(out.at(y, x, c), (row_mean(2 * y) + row_mean(2 * y + 1) + 1) / 2) << y << "," << x << "," << c;
      }
}

// Pillow's nearest samples at pixel centres: halving keeps the odd rows and columns.
TEST(Resize, NearestHalvingKeepsOddPixels) {
  Image image = random_image(8, 6, 1, 4);
  Image out = meganeura::resize(image, 4, 3, ResampleFilter::nearest);
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 4; ++x) EXPECT_EQ(out.at(y, x, 0), image.at(2 * y + 1, 2 * x + 1, 0));
}

// Upscaling by an integer factor with nearest repeats each pixel.
TEST(Resize, NearestTriplingRepeatsPixels) {
  Image image = random_image(5, 4, 2, 5);
  Image out = meganeura::resize(image, 15, 12, ResampleFilter::nearest);
  for (int64_t y = 0; y < 12; ++y)
    for (int64_t x = 0; x < 15; ++x)
      for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(out.at(y, x, c), image.at(y / 3, x / 3, c));
}

// On a linear ramp, interpolating filters reproduce the ramp away from the borders.
TEST(Resize, SmoothFiltersFollowALinearRamp) {
  Image ramp{64, 4, 1, {}};
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 64; ++x) ramp.pixels.push_back(static_cast<uint8_t>(3 * x + 20));
  for (ResampleFilter filter : {ResampleFilter::lanczos, ResampleFilter::bilinear, ResampleFilter::bicubic}) {
    Image out = meganeura::resize(ramp, 32, 4, filter);
    for (int64_t x = 4; x < 28; ++x) {
      double expected = 3.0 * (2.0 * x + 0.5) + 20.0;  // the ramp at the output pixel's centre
      EXPECT_NEAR(out.at(1, x, 0), expected, 1.0) << meganeura::resample_filter_name(filter) << " x=" << x;
    }
  }
}

// Alpha is filtered premultiplied: the colour of fully transparent pixels never shows.
TEST(Resize, TransparentColourDoesNotBleed) {
  Image image{16, 8, 4, {}};
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 16; ++x) {
      bool left = x < 8;
      uint8_t px[4] = {static_cast<uint8_t>(left ? 255 : 0), 0, static_cast<uint8_t>(left ? 0 : 200),
                       static_cast<uint8_t>(left ? 0 : 255)};
      image.pixels.insert(image.pixels.end(), px, px + 4);
    }
  Image out = meganeura::resize(image, 5, 3, ResampleFilter::lanczos);
  bool some_partial = false;
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 5; ++x) {
      EXPECT_EQ(out.at(y, x, 0), 0) << x;  // no red from the transparent half
      if (out.at(y, x, 3) > 0 && out.at(y, x, 3) < 255) some_partial = true;
    }
  EXPECT_TRUE(some_partial);
}

TEST(Resize, RejectsEmptyTargetsAndUnknownFilters) {
  Image image = random_image(4, 4, 3, 6);
  EXPECT_THROW(meganeura::resize(image, 0, 4, ResampleFilter::lanczos), meganeura::Error);
  EXPECT_THROW(meganeura::resample_filter_from_code(6), meganeura::Error);
  EXPECT_EQ(meganeura::resample_filter_from_code(1), ResampleFilter::lanczos);
  image.pixels.pop_back();
  EXPECT_THROW(meganeura::resize(image, 2, 2, ResampleFilter::bilinear), meganeura::Error);
}

TEST(Crop, CopiesTheBlockAndChecksBounds) {
  Image image = random_image(7, 6, 3, 7);
  Image block = meganeura::crop(image, 2, 1, 4, 3);
  ASSERT_EQ(block.width, 4);
  ASSERT_EQ(block.height, 3);
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 4; ++x)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(block.at(y, x, c), image.at(y + 1, x + 2, c));
  EXPECT_THROW(meganeura::crop(image, 4, 0, 4, 2), meganeura::Error);
  EXPECT_THROW(meganeura::crop(image, -1, 0, 2, 2), meganeura::Error);
}

TEST(ToRgb, GrayRepeatsAndAlphaGoesOverWhite) {
  Image gray = random_image(5, 3, 1, 8);
  Image rgb = meganeura::to_rgb(gray);
  ASSERT_EQ(rgb.channels, 3);
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 5; ++x)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(rgb.at(y, x, c), gray.at(y, x, 0));

  Image rgba = random_image(9, 9, 4, 9);
  rgba.at(0, 0, 3) = 0;
  rgba.at(0, 1, 3) = 255;
  Image flat = meganeura::to_rgb(rgba);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_EQ(flat.at(0, 0, c), 255);
    EXPECT_EQ(flat.at(0, 1, c), rgba.at(0, 1, c));
  }
  for (int64_t y = 0; y < 9; ++y)
    for (int64_t x = 0; x < 9; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        double a = rgba.at(y, x, 3) / 255.0;
        double expected = rgba.at(y, x, c) * a + 255.0 * (1.0 - a);
        EXPECT_NEAR(flat.at(y, x, c), expected, 1.0);
      }
  Image la{1, 1, 2, {0, 128}};  // half-transparent black over white
  EXPECT_EQ(meganeura::to_rgb(la).pixels, (std::vector<uint8_t>{127, 127, 127}));
}

}  // namespace
