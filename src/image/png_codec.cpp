// PNG through libpng. libpng reports errors by longjmp; every libpng call runs inside one function
// whose frame holds no object with a destructor, and all state it changes lives in a struct owned by
// the caller, so the jump skips nothing and the caller turns the message into an Error.
#include <png.h>

#include <cstdio>
#include <cstring>

#include "image/codecs.h"
#include "meganeura/error.h"

namespace meganeura::image_codecs {
namespace {

// Larger images are refused before allocating (a tiny corrupt header could ask for terabytes).
constexpr uint64_t kMaxPixels = uint64_t{1} << 28;

struct PngDecodeState {
  std::span<const uint8_t> bytes;
  size_t offset = 0;
  char message[256] = {};
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<png_bytep> rows;
  Image image;

  ~PngDecodeState() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

void on_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngDecodeState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof state->message, "%s", message);
  png_longjmp(png, 1);
}

// Warnings (unusual colour profiles and the like) do not stop decoding and are not printed.
void on_warning(png_structp, png_const_charp) {}

void read_from_memory(png_structp png, png_bytep out, size_t length) {
  auto* state = static_cast<PngDecodeState*>(png_get_io_ptr(png));
  if (length > state->bytes.size() - state->offset) png_error(png, "the file is truncated");
  std::memcpy(out, state->bytes.data() + state->offset, length);
  state->offset += length;
}

// Returns false when libpng reported an error (text in state.message).
bool run_decode(PngDecodeState& state) {
  if (setjmp(png_jmpbuf(state.png))) return false;
  png_set_read_fn(state.png, &state, read_from_memory);
  png_read_info(state.png, state.info);
  png_uint_32 width = png_get_image_width(state.png, state.info);
  png_uint_32 height = png_get_image_height(state.png, state.info);
  if (uint64_t{width} * height > kMaxPixels) png_error(state.png, "the image is too large (over 2^28 pixels)");
  int color_type = png_get_color_type(state.png, state.info);
  int bit_depth = png_get_bit_depth(state.png, state.info);
  // 8 bits per sample, palettes expanded, transparency chunks as an alpha channel.
  if (bit_depth == 16) png_set_strip_16(state.png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(state.png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(state.png);
  if (png_get_valid(state.png, state.info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(state.png);
  png_set_interlace_handling(state.png);
  png_read_update_info(state.png, state.info);
  int channels = png_get_channels(state.png, state.info);
  size_t row_bytes = png_get_rowbytes(state.png, state.info);
  if (png_get_bit_depth(state.png, state.info) != 8 || row_bytes != size_t{width} * channels)
    png_error(state.png, "unexpected sample layout after conversion to 8 bits");
  state.image.width = width;
  state.image.height = height;
  state.image.channels = channels;
  state.image.pixels.resize(row_bytes * height);
  state.rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) state.rows[y] = state.image.pixels.data() + y * row_bytes;
  png_read_image(state.png, state.rows.data());
  png_read_end(state.png, nullptr);
  return true;
}

struct PngEncodeState {
  char message[256] = {};
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<uint8_t> bytes;
  std::vector<png_bytep> rows;

  ~PngEncodeState() { png_destroy_write_struct(&png, info ? &info : nullptr); }
};

void on_encode_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngEncodeState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof state->message, "%s", message);
  png_longjmp(png, 1);
}

void write_to_memory(png_structp png, png_bytep data, size_t length) {
  auto* state = static_cast<PngEncodeState*>(png_get_io_ptr(png));
  state->bytes.insert(state->bytes.end(), data, data + length);
}

void flush_nothing(png_structp) {}

bool run_encode(PngEncodeState& state, const Image& image, int color_type) {
  if (setjmp(png_jmpbuf(state.png))) return false;
  png_set_write_fn(state.png, &state, write_to_memory, flush_nothing);
  png_set_IHDR(state.png, state.info, static_cast<png_uint_32>(image.width),
               static_cast<png_uint_32>(image.height), 8, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(state.png, state.info);
  png_write_image(state.png, state.rows.data());
  png_write_end(state.png, nullptr);
  return true;
}

}  // namespace

bool has_png_signature(std::span<const uint8_t> bytes) {
  return bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0;
}

Image decode_png(std::span<const uint8_t> bytes, const std::string& label) {
  PngDecodeState state;
  state.bytes = bytes;
  state.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
  if (state.png) state.info = png_create_info_struct(state.png);
  if (!state.png || !state.info) throw Error(label + ": out of memory starting the PNG decoder");
  if (!run_decode(state)) throw Error(label + ": invalid PNG: " + state.message);
  return std::move(state.image);
}

std::vector<uint8_t> encode_png_bytes(const Image& image, const std::string& label) {
  static const int kColorTypes[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                    PNG_COLOR_TYPE_RGB_ALPHA};
  if (image.channels < 1 || image.channels > 4)
    throw Error(label + ": PNG needs 1 to 4 channels, the image has " + std::to_string(image.channels));
  if (image.width < 1 || image.height < 1 || image.width > 0x7fffffff || image.height > 0x7fffffff)
    throw Error(label + ": cannot encode a " + std::to_string(image.width) + "x" +
                std::to_string(image.height) + " image as PNG (sides must be 1 to 2^31-1)");
  size_t row_bytes = static_cast<size_t>(image.width * image.channels);
  if (image.pixels.size() != row_bytes * static_cast<size_t>(image.height))
    throw Error(label + ": the image holds " + std::to_string(image.pixels.size()) + " bytes, expected " +
                std::to_string(row_bytes * static_cast<size_t>(image.height)) + " for " +
                std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                std::to_string(image.channels));
  PngEncodeState state;
  state.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, on_encode_error, on_warning);
  if (state.png) state.info = png_create_info_struct(state.png);
  if (!state.png || !state.info) throw Error(label + ": out of memory starting the PNG encoder");
  state.rows.resize(static_cast<size_t>(image.height));
  // libpng takes non-const row pointers but only reads them when writing.
  auto* base = const_cast<uint8_t*>(image.pixels.data());
  for (size_t y = 0; y < state.rows.size(); ++y) state.rows[y] = base + y * row_bytes;
  if (!run_encode(state, image, kColorTypes[image.channels - 1]))
    throw Error(label + ": PNG encoding failed: " + state.message);
  return std::move(state.bytes);
}

}  // namespace meganeura::image_codecs

namespace meganeura {
std::vector<uint8_t> encode_png(const Image& image) { return image_codecs::encode_png_bytes(image, "encode_png"); }
}  // namespace meganeura
