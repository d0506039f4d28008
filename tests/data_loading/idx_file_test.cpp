// IDX parsing: hand-encoded files (plain and gzip) are read back exactly, and damaged files fail
// with messages that name the file and the problem.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <random>

#include "meganeura/data.h"
#include "meganeura/error.h"
#include "support/temp_dir.h"

namespace md = meganeura::data;

namespace {

// An IDX file written byte by byte, independently of the library's writer.
std::vector<uint8_t> encode_idx(uint8_t type_code, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out = {0, 0, type_code, static_cast<uint8_t>(dims.size())};
  for (uint32_t dim : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(dim >> shift));
  }
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void write_plain(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::vector<uint8_t> read_all(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> random_bytes(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(count);
  for (auto& byte : out) byte = static_cast<uint8_t>(rng());
  return out;
}

// Runs `body`, expecting a meganeura::Error whose message contains every one of `parts`.
template <typename Body>
void expect_error(Body body, std::initializer_list<std::string> parts) {
  try {
    body();
  } catch (const meganeura::Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "expected a meganeura::Error";
}

}  // namespace

TEST(IdxFile, ReadsHandEncodedPlainFile) {
  TempDir dir;
  const auto body = random_bytes(3 * 4 * 5, 1);
  write_plain(dir / "a.idx", encode_idx(0x08, {3, 4, 5}, body));
  const md::IdxArray array = md::read_idx(dir / "a.idx");
  EXPECT_EQ(array.type, md::IdxType::u8);
  EXPECT_EQ(array.dims, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(array.bytes, body);
  EXPECT_EQ(array.element_count(), 60);
}

TEST(IdxFile, ReadsGzipFileLikePlainOne) {
  TempDir dir;
  const auto body = random_bytes(7 * 9, 2);
  write_gzip(dir / "a.idx.gz", encode_idx(0x08, {7, 9}, body));
  const md::IdxArray array = md::read_idx(dir / "a.idx.gz");
  EXPECT_EQ(array.dims, (std::vector<int64_t>{7, 9}));
  EXPECT_EQ(array.bytes, body);
}

TEST(IdxFile, ConvertsBigEndianElementsToHostOrder) {
  TempDir dir;
  // Two int32 values, stored big-endian as the format requires.
  write_plain(dir / "i32.idx", encode_idx(0x0C, {2}, {0x01, 0x02, 0x03, 0x04, 0xFF, 0xFF, 0xFF, 0xFE}));
  const md::IdxArray array = md::read_idx(dir / "i32.idx");
  ASSERT_EQ(array.type, md::IdxType::i32);
  int32_t values[2];
  std::memcpy(values, array.bytes.data(), sizeof values);
  EXPECT_EQ(values[0], 0x01020304);
  EXPECT_EQ(values[1], -2);
}

TEST(IdxFile, WriterRoundTripsEveryTypePlainAndGzip) {
  TempDir dir;
  const std::pair<md::IdxType, int> types[] = {{md::IdxType::u8, 1},  {md::IdxType::i8, 1},  {md::IdxType::i16, 2},
                                               {md::IdxType::i32, 4}, {md::IdxType::f32, 4}, {md::IdxType::f64, 8}};
  uint32_t seed = 10;
  for (const auto& [type, width] : types) {
    for (bool gzip : {false, true}) {
      md::IdxArray array;
      array.type = type;
      array.dims = {2, 3, 5};
      array.bytes = random_bytes(30 * width, ++seed);
      const auto path = dir / ("t" + std::to_string(seed) + ".idx");
      md::write_idx(path, array, gzip);
      const auto raw = read_all(path);
      ASSERT_GE(raw.size(), 2u);
      EXPECT_EQ(raw[0] == 0x1f && raw[1] == 0x8b, gzip) << "gzip magic present exactly when asked for";
      const md::IdxArray back = md::read_idx(path);
      EXPECT_EQ(back.type, type);
      EXPECT_EQ(back.dims, array.dims);
      EXPECT_EQ(back.bytes, array.bytes);
    }
  }
}

TEST(IdxFile, WriterStoresElementsBigEndian) {
  TempDir dir;
  md::IdxArray array;
  array.type = md::IdxType::i16;
  array.dims = {1};
  const int16_t value = 0x0A0B;
  array.bytes.resize(2);
  std::memcpy(array.bytes.data(), &value, 2);
  md::write_idx(dir / "x.idx", array);
  EXPECT_EQ(read_all(dir / "x.idx"), encode_idx(0x0B, {1}, {0x0A, 0x0B}));
}

TEST(IdxFile, MissingFileIsAnError) {
  TempDir dir;
  expect_error([&] { md::read_idx(dir / "nope.idx"); }, {"nope.idx", "not found"});
}

TEST(IdxFile, BadMagicIsAnError) {
  TempDir dir;
  auto bytes = encode_idx(0x08, {4}, random_bytes(4, 3));
  bytes[0] = 0x50;  // e.g. a PNG or text file given by mistake
  write_plain(dir / "bad.idx", bytes);
  expect_error([&] { md::read_idx(dir / "bad.idx"); }, {"bad.idx", "bad magic"});
}

TEST(IdxFile, UnknownTypeCodeIsAnError) {
  TempDir dir;
  write_plain(dir / "type.idx", encode_idx(0x0A, {4}, random_bytes(4, 4)));
  expect_error([&] { md::read_idx(dir / "type.idx"); }, {"type.idx", "unknown element type code 10"});
}

TEST(IdxFile, ZeroDimensionIsAnError) {
  TempDir dir;
  write_plain(dir / "zero.idx", encode_idx(0x08, {3, 0}, {}));
  expect_error([&] { md::read_idx(dir / "zero.idx"); }, {"zero.idx", "dimension 1 is zero"});
}

TEST(IdxFile, TruncatedHeaderIsAnError) {
  TempDir dir;
  auto bytes = encode_idx(0x08, {3, 4, 5}, {});
  bytes.resize(9);  // cut inside the dimension sizes
  write_plain(dir / "short.idx", bytes);
  expect_error([&] { md::read_idx(dir / "short.idx"); }, {"short.idx", "truncated", "dimension sizes"});
}

TEST(IdxFile, TruncatedDataIsAnError) {
  TempDir dir;
  auto bytes = encode_idx(0x08, {10, 10}, random_bytes(100, 5));
  bytes.resize(bytes.size() - 37);
  write_plain(dir / "cut.idx", bytes);
  expect_error([&] { md::read_idx(dir / "cut.idx"); }, {"cut.idx", "truncated", "promises 100 bytes", "holds 63"});
}

TEST(IdxFile, TrailingBytesAreAnError) {
  TempDir dir;
  auto bytes = encode_idx(0x08, {10}, random_bytes(13, 6));
  write_plain(dir / "long.idx", bytes);
  expect_error([&] { md::read_idx(dir / "long.idx"); }, {"long.idx", "3 bytes after"});
}

TEST(IdxFile, TruncatedGzipIsAnError) {
  TempDir dir;
  write_gzip(dir / "full.gz", encode_idx(0x08, {50, 40}, random_bytes(2000, 7)));
  auto gz = read_all(dir / "full.gz");
  gz.resize(gz.size() / 2);
  write_plain(dir / "half.gz", gz);
  expect_error([&] { md::read_idx(dir / "half.gz"); }, {"half.gz", "truncated"});
}

TEST(IdxFile, CorruptGzipIsAnError) {
  TempDir dir;
  write_gzip(dir / "good.gz", encode_idx(0x08, {50, 40}, random_bytes(2000, 8)));
  auto gz = read_all(dir / "good.gz");
  for (size_t i = 20; i < gz.size() - 10; i += 7) gz[i] ^= 0x5A;
  write_plain(dir / "bad.gz", gz);
  expect_error([&] { md::read_idx(dir / "bad.gz"); }, {"bad.gz", "corrupt gzip"});
}

TEST(IdxFile, WriterRejectsShapeThatDisagreesWithData) {
  TempDir dir;
  md::IdxArray array;
  array.dims = {2, 3};
  array.bytes = random_bytes(5, 9);
  expect_error([&] { md::write_idx(dir / "w.idx", array); }, {"w.idx", "[2, 3]", "needs 6 bytes, got 5"});
}

// Random damage to valid files, plain and gzip: every outcome is either a consistent array or a
// meganeura::Error, never a crash or an array whose size disagrees with its shape.
TEST(IdxFile, RandomDamageNeverYieldsAnInconsistentArray) {
  TempDir dir;
  std::mt19937 rng(99);
  const auto original = encode_idx(0x0C, {6, 5}, random_bytes(6 * 5 * 4, 10));
  write_gzip(dir / "good.gz", original);
  const auto gzip = read_all(dir / "good.gz");
  int errors = 0, parsed = 0;
  for (int trial = 0; trial < 300; ++trial) {
    auto bytes = trial % 2 ? gzip : original;
    switch (rng() % 3) {
      case 0:  // flip a few bytes
        for (int n = 1 + rng() % 3; n > 0; --n) bytes[rng() % bytes.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
        break;
      case 1:  // cut the file short
        bytes.resize(rng() % bytes.size());
        break;
      default:  // append junk
        for (int n = 1 + rng() % 9; n > 0; --n) bytes.push_back(static_cast<uint8_t>(rng()));
    }
    write_plain(dir / "damaged", bytes);
    try {
      const md::IdxArray array = md::read_idx(dir / "damaged");
      ++parsed;
      static const int width[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 2, 4, 4, 8, 0};
      ASSERT_EQ(array.bytes.size(), static_cast<size_t>(array.element_count()) * width[static_cast<int>(array.type)]);
    } catch (const meganeura::Error& e) {
      ++errors;
      ASSERT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 100);  // most damage is caught; flips inside the payload are undetectable in plain files
  EXPECT_GT(parsed, 0);
}
