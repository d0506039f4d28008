// IDX files (the MNIST format): a 4-byte magic {0, 0, type, ndims}, ndims big-endian uint32 sizes,
// then the elements in big-endian order. zlib's gz* functions read plain and gzip files alike.
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>

#include "meganeura/data.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::data {
namespace {

int element_size(IdxType type) {
  switch (type) {
    case IdxType::u8:
    case IdxType::i8:
      return 1;
    case IdxType::i16:
      return 2;
    case IdxType::i32:
    case IdxType::f32:
      return 4;
    case IdxType::f64:
      return 8;
  }
  return 0;
}

bool is_known_type(uint8_t code) {
  switch (code) {
    case 0x08: case 0x09: case 0x0B: case 0x0C: case 0x0D: case 0x0E:
      return true;
    default:
      return false;
  }
}

// IDX stores elements big-endian; flips them in place when the host is little-endian.
void swap_to_or_from_big_endian(std::vector<uint8_t>& bytes, int width) {
  if (std::endian::native == std::endian::big || width == 1) return;
  for (size_t i = 0; i + width <= bytes.size(); i += width) std::reverse(bytes.begin() + i, bytes.begin() + i + width);
}

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

class IdxReader {
 public:
  explicit IdxReader(const std::filesystem::path& path) : path_(path) {
    if (!std::filesystem::exists(path)) fail("file not found; check the path");
    file_.reset(gzopen(path.c_str(), "rb"));
    if (!file_) fail("cannot open it (" + std::string(std::strerror(errno)) + ")");
    gzbuffer(file_.get(), 1 << 17);
  }

  // Reads up to `size` bytes and returns how many arrived; throws on a damaged gzip stream.
  size_t read(uint8_t* out, size_t size) {
    size_t total = 0;
    while (total < size) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size - total, INT_MAX / 2));
      const int got = gzread(file_.get(), out + total, chunk);
      if (got < 0) gz_fail();
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    // gzread reports a gzip stream cut short as end of data with Z_BUF_ERROR pending.
    int code = Z_OK;
    gzerror(file_.get(), &code);
    if (code != Z_OK) gz_fail();
    return total;
  }

  void read_exactly(uint8_t* out, size_t size, const std::string& what) {
    const size_t got = read(out, size);
    if (got != size) {
      fail("truncated: expected " + std::to_string(size) + " bytes of " + what + ", found only " + std::to_string(got) +
           "; the file is incomplete, download it again");
    }
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error("IDX file '" + path_.string() + "': " + problem);
  }

 private:
  [[noreturn]] void gz_fail() const {
    int code = Z_OK;
    const char* message = gzerror(file_.get(), &code);
    if (code == Z_BUF_ERROR) fail("truncated: the gzip stream ends early; the file is incomplete, download it again");
    fail(std::string("corrupt gzip data (") + (message ? message : "unknown zlib error") +
         "); the file is damaged, download it again");
  }

  std::filesystem::path path_;
  GzHandle file_;
};

}  // namespace

int64_t IdxArray::element_count() const {
  int64_t count = 1;
  for (int64_t dim : dims) count *= dim;
  return count;
}

IdxArray read_idx(const std::filesystem::path& path) {
  trace::Scope scope("read_idx", path.filename().string());
  IdxReader reader(path);
  uint8_t magic[4];
  reader.read_exactly(magic, 4, "header");
  if (magic[0] != 0 || magic[1] != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", magic[0], magic[1], magic[2], magic[3]);
    reader.fail(std::string("bad magic number (bytes ") + hex +
                "); an IDX file starts with two zero bytes, a type code and a dimension count");
  }
  if (!is_known_type(magic[2])) {
    reader.fail("unknown element type code " + std::to_string(magic[2]) +
                "; IDX allows 8 (u8), 9 (i8), 11 (i16), 12 (i32), 13 (f32), 14 (f64)");
  }
  if (magic[3] == 0) reader.fail("the header declares zero dimensions; an IDX array needs at least one");

  IdxArray array;
  array.type = static_cast<IdxType>(magic[2]);
  std::vector<uint8_t> dim_bytes(4u * magic[3]);
  reader.read_exactly(dim_bytes.data(), dim_bytes.size(), "dimension sizes");
  // Sizes are bounded by what a file can hold; stop multiplying before the product can overflow.
  const uint64_t limit = uint64_t{1} << 48;
  uint64_t bytes = static_cast<uint64_t>(element_size(array.type));
  for (int d = 0; d < magic[3]; ++d) {
    const uint8_t* p = &dim_bytes[4 * d];
    const uint64_t dim = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    if (dim == 0) reader.fail("dimension " + std::to_string(d) + " is zero; the header is corrupt");
    bytes *= dim;
    if (bytes > limit) reader.fail("the header declares an array larger than 256 TiB; the header is corrupt");
    array.dims.push_back(static_cast<int64_t>(dim));
  }

  // Grown as data arrives, so a corrupt header that claims terabytes fails as truncated instead of
  // allocating what it claims.
  size_t got = 0;
  while (got < bytes) {
    const size_t chunk = std::min<size_t>(bytes - got, std::max<size_t>(got, size_t{1} << 20));
    array.bytes.resize(got + chunk);
    const size_t arrived = reader.read(array.bytes.data() + got, chunk);
    got += arrived;
    if (arrived < chunk) break;
  }
  if (got != bytes) {
    reader.fail("truncated: the header " + format_shape(array.dims) + " promises " + std::to_string(bytes) +
                " bytes of data, the file holds " + std::to_string(got) + "; the file is incomplete, download it again");
  }
  uint8_t extra[64];
  const size_t trailing = reader.read(extra, sizeof extra);
  if (trailing != 0) {
    reader.fail("has " + std::string(trailing == sizeof extra ? "at least " : "") + std::to_string(trailing) +
                " bytes after the " + std::to_string(bytes) + " bytes that the header " + format_shape(array.dims) +
                " declares; the header or the file is corrupt");
  }
  swap_to_or_from_big_endian(array.bytes, element_size(array.type));
  return array;
}

void write_idx(const std::filesystem::path& path, const IdxArray& array, bool gzip) {
  const std::string where = "write_idx('" + path.string() + "')";
  if (array.dims.empty() || array.dims.size() > 255) {
    throw Error(where + ": an IDX array has 1 to 255 dimensions, got " + std::to_string(array.dims.size()));
  }
  for (int64_t dim : array.dims) {
    if (dim <= 0 || dim > UINT32_MAX) throw Error(where + ": dimension sizes must be in [1, 2^32), got " + format_shape(array.dims));
  }
  const size_t expected = static_cast<size_t>(array.element_count()) * element_size(array.type);
  if (array.bytes.size() != expected) {
    throw Error(where + ": shape " + format_shape(array.dims) + " needs " + std::to_string(expected) + " bytes, got " +
                std::to_string(array.bytes.size()));
  }
  std::vector<uint8_t> out = {0, 0, static_cast<uint8_t>(array.type), static_cast<uint8_t>(array.dims.size())};
  for (int64_t dim : array.dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(dim >> shift));
  }
  std::vector<uint8_t> body = array.bytes;
  swap_to_or_from_big_endian(body, element_size(array.type));
  out.insert(out.end(), body.begin(), body.end());

  // "T" asks zlib for a plain (transparent) write, so both forms share one path.
  GzHandle file(gzopen(path.c_str(), gzip ? "wb6" : "wbT"));
  if (!file) throw Error(where + ": cannot create the file (" + std::strerror(errno) + ")");
  size_t written = 0;
  while (written < out.size()) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(out.size() - written, INT_MAX / 2));
    const int n = gzwrite(file.get(), out.data() + written, chunk);
    if (n <= 0) throw Error(where + ": write failed; check free disk space and permissions");
    written += static_cast<size_t>(n);
  }
  if (gzclose(file.release()) != Z_OK) throw Error(where + ": closing the file failed; check free disk space");
}

}  // namespace meganeura::data
