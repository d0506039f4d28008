// JPEG through libjpeg(-turbo). Its default error handler exits the process, so errors longjmp back
// into the one function that makes every libjpeg call; that frame holds no object with a
// destructor and all state lives in a struct owned by the caller (see png_codec.cpp).
#include <csetjmp>
#include <cstdio>
#include <cstring>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>  // JWRN_JPEG_EOF

#include "image/codecs.h"
#include "meganeura/error.h"

namespace meganeura::image_codecs {
namespace {

constexpr uint64_t kMaxPixels = uint64_t{1} << 28;

struct JpegErrorManager {
  jpeg_error_mgr base;  // first, so libjpeg's pointer to it is a pointer to the whole struct
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
  bool truncated = false;
};

struct JpegDecodeState {
  jpeg_decompress_struct decoder;
  JpegErrorManager errors;
  bool created = false;
  std::vector<JSAMPROW> rows;
  Image image;
  bool cmyk = false;

  ~JpegDecodeState() {
    if (created) jpeg_destroy_decompress(&decoder);
  }
};

void on_error(j_common_ptr info) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(info->err);
  (*info->err->format_message)(info, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings (corrupt but decodable data) are not printed. A cut-off stream is only a warning to
// libjpeg (it pads the image with grey), but an Error here.
void on_message(j_common_ptr info, int level) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(info->err);
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) errors->truncated = true;
}

bool run_decode(JpegDecodeState& state, std::span<const uint8_t> bytes) {
  if (setjmp(state.errors.jump)) return false;
  jpeg_create_decompress(&state.decoder);
  state.created = true;
  jpeg_mem_src(&state.decoder, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&state.decoder, TRUE);
  if (state.decoder.jpeg_color_space == JCS_CMYK || state.decoder.jpeg_color_space == JCS_YCCK) {
    state.cmyk = true;
    return true;
  }
  if (uint64_t{state.decoder.image_width} * state.decoder.image_height > kMaxPixels) {
    std::snprintf(state.errors.message, sizeof state.errors.message, "the image is too large (over 2^28 pixels)");
    return false;
  }
  state.decoder.out_color_space = state.decoder.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&state.decoder);
  Image& image = state.image;
  image.width = state.decoder.output_width;
  image.height = state.decoder.output_height;
  image.channels = state.decoder.output_components;
  size_t row_bytes = static_cast<size_t>(image.width * image.channels);
  image.pixels.resize(row_bytes * static_cast<size_t>(image.height));
  while (state.decoder.output_scanline < state.decoder.output_height) {
    JSAMPROW row = image.pixels.data() + state.decoder.output_scanline * row_bytes;
    jpeg_read_scanlines(&state.decoder, &row, 1);
  }
  jpeg_finish_decompress(&state.decoder);
  return true;
}

}  // namespace

bool has_jpeg_signature(std::span<const uint8_t> bytes) {
  return bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

Image decode_jpeg(std::span<const uint8_t> bytes, const std::string& label) {
  JpegDecodeState state;
  state.decoder.err = jpeg_std_error(&state.errors.base);
  state.errors.base.error_exit = on_error;
  state.errors.base.emit_message = on_message;
  if (!run_decode(state, bytes)) throw Error(label + ": invalid JPEG: " + state.errors.message);
  if (state.cmyk)
    throw Error(label + ": CMYK JPEG images are not supported; convert it to RGB first");
  if (state.errors.truncated)
    throw Error(label + ": invalid JPEG: the file is truncated");
  return std::move(state.image);
}

}  // namespace meganeura::image_codecs
