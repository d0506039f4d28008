// The sample grid and the loss plot: pixel layout, and PNG files that libpng reads back unchanged.
#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "meganeura/error.h"
#include "meganeura/image.h"
#include "models/diffusion_pictures.h"
#include "support/temp_dir.h"

namespace meganeura::models {
namespace {

// Reads a PNG with libpng's own simplified API, independently of the library's reader.
Image read_back(const std::filesystem::path& path, png_uint_32 format) {
  png_image info{};
  info.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&info, path.c_str())) {
    ADD_FAILURE() << "libpng cannot open " << path << ": " << info.message;
    return {};
  }
  info.format = format;
  Image image;
  image.width = info.width;
  image.height = info.height;
  image.channels = PNG_IMAGE_PIXEL_CHANNELS(format);
  image.pixels.resize(PNG_IMAGE_SIZE(info));
  if (!png_image_finish_read(&info, nullptr, image.pixels.data(), 0, nullptr)) {
    ADD_FAILURE() << "libpng cannot decode " << path << ": " << info.message;
  }
  return image;
}

std::vector<float> random_samples(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.2f, 1.2f);  // a little outside [-1, 1]: clamped
  std::vector<float> values(count);
  for (float& v : values) v = uniform(rng);
  return values;
}

TEST(DiffusionPictures, GridPlacesEachImageInItsTile) {
  const int64_t rows = 3, columns = 4, height = 5, width = 6, gap = 2;
  const std::vector<float> samples = random_samples(rows * columns * height * width, 1);
  const Image grid = sample_grid(samples, rows, columns, height, width, gap);
  ASSERT_EQ(grid.channels, 1);
  ASSERT_EQ(grid.width, columns * width + (columns + 1) * gap);
  ASSERT_EQ(grid.height, rows * height + (rows + 1) * gap);
  for (int64_t index = 0; index < rows * columns; ++index) {
    for (int64_t y = 0; y < height; ++y) {
      for (int64_t x = 0; x < width; ++x) {
        const double value = std::clamp(samples[(index * height + y) * width + x], -1.0f, 1.0f);
        const int64_t top = gap + (index / columns) * (height + gap);
        const int64_t left = gap + (index % columns) * (width + gap);
        ASSERT_EQ(grid.at(top + y, left + x, 0), std::lround((value + 1) * 127.5)) << index << " " << y << " " << x;
      }
    }
  }
  EXPECT_EQ(grid.at(0, 0, 0), 96);  // the gaps are gray

  // Enlarged: each value becomes a 3×3 block.
  const Image large = sample_grid(samples, rows, columns, height, width, gap, 3);
  ASSERT_EQ(large.width, columns * width * 3 + (columns + 1) * gap);
  const int64_t last = rows * columns - 1;
  const int64_t top = gap + (last / columns) * (height * 3 + gap);
  const int64_t left = gap + (last % columns) * (width * 3 + gap);
  for (int64_t y = 0; y < height * 3; ++y) {
    for (int64_t x = 0; x < width * 3; ++x) {
      ASSERT_EQ(large.at(top + y, left + x, 0), grid.at(gap + (last / columns) * (height + gap) + y / 3,
                                                        gap + (last % columns) * (width + gap) + x / 3, 0));
    }
  }
  EXPECT_THROW(sample_grid(samples, rows, columns + 1, height, width), Error);
  EXPECT_THROW(sample_grid(samples, 0, columns, height, width), Error);
}

TEST(DiffusionPictures, GridSurvivesAPngRoundTrip) {
  TempDir dir;
  const Image grid = sample_grid(random_samples(10 * 32 * 32, 2), 2, 5, 32, 32);
  const std::filesystem::path path = dir / "grid.png";
  write_png(path.string(), grid);
  const Image back = read_back(path, PNG_FORMAT_GRAY);
  ASSERT_EQ(back.width, grid.width);
  ASSERT_EQ(back.height, grid.height);
  EXPECT_EQ(back.pixels, grid.pixels);
}

TEST(DiffusionPictures, LossPlotIsAReadablePng) {
  // A decaying noisy loss, as a diffusion run produces.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> jitter(0.8f, 1.25f);
  std::vector<float> losses;
  for (int i = 0; i < 500; ++i) losses.push_back((0.04f + 0.9f * std::exp(-i / 40.0f)) * jitter(rng));

  TempDir dir;
  const Image plot = loss_plot(losses, 640, 400);
  ASSERT_EQ(plot.channels, 3);
  const std::filesystem::path path = dir / "loss.png";
  write_png(path.string(), plot);
  const Image back = read_back(path, PNG_FORMAT_RGB);
  ASSERT_EQ(back.width, 640);
  ASSERT_EQ(back.height, 400);
  EXPECT_EQ(back.pixels, plot.pixels);

  // Mostly white background, black axes and text, and the blue average curve: falling from left
  // to right, so its topmost pixel lies left of its lowest one.
  int64_t white = 0, black = 0, blue = 0, top_blue_x = -1, top_blue_y = 1 << 30, low_blue_x = -1, low_blue_y = -1;
  for (int64_t y = 0; y < back.height; ++y) {
    for (int64_t x = 0; x < back.width; ++x) {
      const int r = back.at(y, x, 0), g = back.at(y, x, 1), b = back.at(y, x, 2);
      white += r == 255 && g == 255 && b == 255;
      black += r == 0 && g == 0 && b == 0;
      if (b > 150 && r < 80) {
        ++blue;
        if (y < top_blue_y) top_blue_y = y, top_blue_x = x;
        if (y > low_blue_y) low_blue_y = y, low_blue_x = x;
      }
    }
  }
  const int64_t pixels = back.width * back.height;
  EXPECT_GT(white, pixels / 2);
  EXPECT_GT(black, 500);
  EXPECT_GT(blue, 400);
  EXPECT_LT(top_blue_x, low_blue_x);
  EXPECT_LT(top_blue_y, low_blue_y);

  EXPECT_THROW(loss_plot(std::vector<float>{}), Error);
  EXPECT_THROW(loss_plot(std::vector<float>{0.5f, -1.0f}), Error);
  EXPECT_THROW(loss_plot(losses, 50, 50), Error);
  EXPECT_NO_THROW(loss_plot(std::vector<float>{0.3f}));  // one step: a dot, still a plot
}

}  // namespace
}  // namespace meganeura::models
