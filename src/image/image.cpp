#include <fstream>
#include <iterator>

#include "image/codecs.h"
#include "meganeura/error.h"
#include "meganeura/image.h"

namespace meganeura {

Image decode_image(std::span<const uint8_t> bytes, const std::string& label) {
  if (bytes.empty()) throw Error(label + ": the file is empty, not an image");
  if (image_codecs::has_png_signature(bytes)) return image_codecs::decode_png(bytes, label);
  if (image_codecs::has_jpeg_signature(bytes)) return image_codecs::decode_jpeg(bytes, label);
  throw Error(label + ": not a PNG or JPEG image (unrecognised first bytes); convert it to PNG or JPEG");
}

Image read_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("read_image: cannot open " + path + " (missing or unreadable)");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("read_image: reading " + path + " failed");
  return decode_image(bytes, path);
}

void write_png(const std::string& path, const Image& image) {
  std::vector<uint8_t> bytes = image_codecs::encode_png_bytes(image, "write_png(" + path + ")");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("write_png: cannot create " + path + " (check the folder exists and is writable)");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw Error("write_png: writing " + path + " failed (disk full?)");
}

}  // namespace meganeura
