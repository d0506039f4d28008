// PNG/JPEG decoding and PNG encoding: round trips for every channel layout, files written by libpng
// and libjpeg directly (palette, 16-bit, transparency, interlacing, grayscale and CMYK JPEG), and
// broken inputs that must become Errors.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <random>

#include "meganeura/error.h"
#include "meganeura/image.h"
#include "support/temp_dir.h"

namespace {

using meganeura::Image;

Image random_image(int64_t width, int64_t height, int64_t channels, uint32_t seed) {
  std::mt19937 rng(seed);
  Image image{width, height, channels, {}};
  image.pixels.resize(static_cast<size_t>(width * height * channels));
  for (auto& p : image.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return image;
}

void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const meganeura::Error& e) {
    return e.what();
  }
  return "";
}

// Writes a PNG with libpng's simplified API in any colour type libpng offers (the test's own
// encoder, independent of the library's).
std::vector<uint8_t> png_via_simplified_api(const std::vector<uint8_t>& samples, uint32_t width, uint32_t height,
                                            uint32_t format, const std::vector<uint8_t>& colormap = {},
                                            uint32_t colormap_entries = 0) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = format;
  image.colormap_entries = colormap_entries;
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_get_memory_size(image, size, 0, samples.data(), 0,
                                              colormap.empty() ? nullptr : colormap.data()));
  std::vector<uint8_t> bytes(size);
  EXPECT_TRUE(png_image_write_to_memory(&image, bytes.data(), &size, 0, samples.data(), 0,
                                        colormap.empty() ? nullptr : colormap.data()));
  bytes.resize(size);
  return bytes;
}

TEST(ImageIo, PngRoundTripsEveryChannelCount) {
  TempDir dir;
  for (int64_t channels = 1; channels <= 4; ++channels) {
    Image original = random_image(13, 7, channels, 100 + static_cast<uint32_t>(channels));
    auto path = (dir / ("c" + std::to_string(channels) + ".png")).string();
    meganeura::write_png(path, original);
    Image back = meganeura::read_image(path);
    EXPECT_EQ(back.width, 13);
    EXPECT_EQ(back.height, 7);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.pixels, original.pixels);
  }
}

TEST(ImageIo, EncodePngMatchesWritePng) {
  TempDir dir;
  Image original = random_image(5, 9, 3, 7);
  auto path = (dir / "a.png").string();
  meganeura::write_png(path, original);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(file, meganeura::encode_png(original));
  EXPECT_EQ(meganeura::decode_image(file, "memory").pixels, original.pixels);
}

TEST(ImageIo, PaletteWithTransparencyBecomesRgba) {
  // Three palette entries with alpha; libpng writes PLTE plus tRNS.
  std::vector<uint8_t> colormap = {200, 10, 30, 255, 0, 90, 250, 128, 17, 17, 17, 0};
  std::mt19937 rng(3);
  std::vector<uint8_t> indices(6 * 4);
  for (auto& i : indices) i = static_cast<uint8_t>(rng() % 3);
  auto bytes = png_via_simplified_api(indices, 6, 4, PNG_FORMAT_RGBA_COLORMAP, colormap, 3);
  Image image = meganeura::decode_image(bytes, "palette.png");
  ASSERT_EQ(image.channels, 4);
  for (size_t p = 0; p < indices.size(); ++p)
    for (size_t c = 0; c < 4; ++c) EXPECT_EQ(image.pixels[p * 4 + c], colormap[indices[p] * 4 + c]);
}

TEST(ImageIo, OpaquePaletteBecomesRgb) {
  std::vector<uint8_t> colormap = {1, 2, 3, 40, 50, 60, 250, 251, 252, 9, 99, 199};
  std::vector<uint8_t> indices = {0, 1, 2, 3, 3, 2, 1, 0, 2, 2};
  auto bytes = png_via_simplified_api(indices, 5, 2, PNG_FORMAT_RGB_COLORMAP, colormap, 4);
  Image image = meganeura::decode_image(bytes, "palette.png");
  ASSERT_EQ(image.channels, 3);
  for (size_t p = 0; p < indices.size(); ++p)
    for (size_t c = 0; c < 3; ++c) EXPECT_EQ(image.pixels[p * 3 + c], colormap[indices[p] * 3 + c]);
}

// Writes 16-bit gray+alpha or RGB, and low-bit-depth or interlaced gray, with the low-level API.
std::vector<uint8_t> png_low_level(uint32_t width, uint32_t height, int bit_depth, int color_type, int interlace,
                                   const std::vector<uint8_t>& packed_rows) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, width, height, bit_depth, color_type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  size_t row_bytes = packed_rows.size() / height;
  std::vector<png_bytep> rows(height);
  for (uint32_t y = 0; y < height; ++y) rows[y] = const_cast<uint8_t*>(packed_rows.data()) + y * row_bytes;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

TEST(ImageIo, SixteenBitKeepsTheHighByte) {
  std::mt19937 rng(11);
  const uint32_t width = 7, height = 3;
  std::vector<uint8_t> samples(width * height * 3 * 2);  // big-endian 16-bit RGB
  for (auto& s : samples) s = static_cast<uint8_t>(rng());
  Image image = meganeura::decode_image(
      png_low_level(width, height, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, samples), "deep.png");
  ASSERT_EQ(image.channels, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) EXPECT_EQ(image.pixels[i], samples[2 * i]);
}

TEST(ImageIo, OneBitGrayExpandsToFullRange) {
  const uint32_t width = 10, height = 2;
  std::vector<uint8_t> packed = {0b10110010, 0b01000000, 0b00000001, 0b11000000};  // 2 bytes per row
  Image image = meganeura::decode_image(
      png_low_level(width, height, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, packed), "bits.png");
  ASSERT_EQ(image.channels, 1);
  for (uint32_t y = 0; y < height; ++y)
    for (uint32_t x = 0; x < width; ++x) {
      bool bit = (packed[y * 2 + x / 8] >> (7 - x % 8)) & 1;
      EXPECT_EQ(image.at(y, x, 0), bit ? 255 : 0) << y << "," << x;
    }
}

TEST(ImageIo, InterlacedGrayAlphaDecodes) {
  Image original = random_image(11, 9, 2, 5);
  Image image = meganeura::decode_image(
      png_low_level(11, 9, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_ADAM7, original.pixels), "adam7.png");
  EXPECT_EQ(image.channels, 2);
  EXPECT_EQ(image.pixels, original.pixels);
}

std::vector<uint8_t> jpeg_via_libjpeg(const Image& image, J_COLOR_SPACE space, int quality) {
  jpeg_compress_struct encoder;
  jpeg_error_mgr errors;
  encoder.err = jpeg_std_error(&errors);
  jpeg_create_compress(&encoder);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&encoder, &buffer, &size);
  encoder.image_width = static_cast<JDIMENSION>(image.width);
  encoder.image_height = static_cast<JDIMENSION>(image.height);
  encoder.input_components = static_cast<int>(image.channels);
  encoder.in_color_space = space;
  jpeg_set_defaults(&encoder);
  jpeg_set_quality(&encoder, quality, TRUE);
  jpeg_start_compress(&encoder, TRUE);
  size_t row_bytes = static_cast<size_t>(image.width * image.channels);
  while (encoder.next_scanline < encoder.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.pixels.data()) + encoder.next_scanline * row_bytes;
    jpeg_write_scanlines(&encoder, &row, 1);
  }
  jpeg_finish_compress(&encoder);
  jpeg_destroy_compress(&encoder);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  free(buffer);
  return bytes;
}

// A smooth image (sides up to 64), so that a high-quality JPEG stays within a few levels of it.
Image gradient_image(int64_t width, int64_t height, int64_t channels) {
  Image image{width, height, channels, {}};
  image.pixels.resize(static_cast<size_t>(width * height * channels));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < channels; ++c)
        image.at(y, x, c) = static_cast<uint8_t>(20 + 2 * x + 3 * y + 10 * c);
  return image;
}

TEST(ImageIo, JpegRgbDecodesCloseToTheSource) {
  TempDir dir;
  Image source = gradient_image(40, 24, 3);
  auto path = (dir / "photo.jpeg").string();
  write_bytes(path, jpeg_via_libjpeg(source, JCS_RGB, 98));
  Image image = meganeura::read_image(path);
  ASSERT_EQ(image.width, 40);
  ASSERT_EQ(image.height, 24);
  ASSERT_EQ(image.channels, 3);
  double total = 0;
  for (size_t i = 0; i < image.pixels.size(); ++i) total += std::abs(int(image.pixels[i]) - int(source.pixels[i]));
  EXPECT_LT(total / static_cast<double>(image.pixels.size()), 3.0);
}

TEST(ImageIo, JpegGrayscaleHasOneChannel) {
  Image source = gradient_image(17, 9, 1);
  Image image = meganeura::decode_image(jpeg_via_libjpeg(source, JCS_GRAYSCALE, 95), "gray.jpg");
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.width, 17);
  EXPECT_EQ(image.height, 9);
}

TEST(ImageIo, CmykJpegIsAClearError) {
  Image source = gradient_image(8, 8, 4);
  std::string message = error_of([&] { meganeura::decode_image(jpeg_via_libjpeg(source, JCS_CMYK, 90), "print.jpg"); });
  EXPECT_NE(message.find("print.jpg"), std::string::npos) << message;
  EXPECT_NE(message.find("CMYK"), std::string::npos) << message;
}

TEST(ImageIo, TruncatedFilesAreErrors) {
  Image source = random_image(30, 20, 3, 9);
  auto png = meganeura::encode_png(source);
  auto jpeg = jpeg_via_libjpeg(gradient_image(64, 64, 3), JCS_RGB, 90);
  for (size_t keep : {size_t{9}, size_t{40}, png.size() / 2, png.size() - 5}) {
    std::vector<uint8_t> cut(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(keep));
    std::string message = error_of([&] { meganeura::decode_image(cut, "cut.png"); });
    EXPECT_NE(message.find("cut.png"), std::string::npos) << keep << ": " << message;
  }
  for (size_t keep : {size_t{4}, size_t{100}, jpeg.size() / 2}) {
    std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(keep));
    std::string message = error_of([&] { meganeura::decode_image(cut, "cut.jpg"); });
    EXPECT_NE(message.find("cut.jpg"), std::string::npos) << keep << ": " << message;
  }
}

TEST(ImageIo, CorruptPngDataIsAnError) {
  auto png = meganeura::encode_png(random_image(16, 16, 3, 21));
  std::mt19937 rng(4);
  for (size_t i = 40; i < png.size() - 12; ++i) png[i] = static_cast<uint8_t>(rng());  // IDAT and its CRC
  std::string message = error_of([&] { meganeura::decode_image(png, "noise.png"); });
  EXPECT_NE(message.find("noise.png: invalid PNG"), std::string::npos) << message;
}

TEST(ImageIo, GarbageAndMissingFilesAreErrors) {
  TempDir dir;
  std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  auto path = (dir / "notes.png").string();
  write_bytes(path, text);
  std::string message = error_of([&] { meganeura::read_image(path); });
  EXPECT_NE(message.find("notes.png: not a PNG or JPEG"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { meganeura::decode_image({}, "empty"); }).find("empty"), std::string::npos);
  message = error_of([&] { meganeura::read_image((dir / "absent.png").string()); });
  EXPECT_NE(message.find("absent.png"), std::string::npos) << message;
}

TEST(ImageIo, WritePngRejectsBadImages) {
  TempDir dir;
  Image wrong_size = random_image(4, 4, 3, 1);
  wrong_size.pixels.pop_back();
  EXPECT_NE(error_of([&] { meganeura::write_png((dir / "x.png").string(), wrong_size); }).find("x.png"),
            std::string::npos);
  Image five_channels = random_image(2, 2, 5, 1);
  EXPECT_NE(error_of([&] { meganeura::encode_png(five_channels); }).find("1 to 4 channels"), std::string::npos);
  EXPECT_NE(error_of([&] { meganeura::write_png((dir / "no" / "such" / "dir.png").string(), random_image(2, 2, 3, 1)); })
                .find("dir.png"),
            std::string::npos);
}

}  // namespace
