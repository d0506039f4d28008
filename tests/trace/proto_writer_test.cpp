// The wire-format encoder against the protobuf encoding spec and against protoc's own decoder.
#include "trace/proto_writer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "support/temp_dir.h"

using meganeura::trace::ProtoWriter;

namespace {

std::string hex(const std::string& bytes) {
  std::string out;
  char byte[4];
  for (unsigned char c : bytes) {
    std::snprintf(byte, sizeof byte, "%02x ", c);
    out += byte;
  }
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace

TEST(ProtoWriter, MatchesTheEncodingSpecExamples) {
  ProtoWriter varint;
  varint.add_varint(1, 150);  // the spec's "Test1 { a: 150 }"
  EXPECT_EQ(hex(varint.bytes()), "08 96 01");

  ProtoWriter text;
  text.add_string(2, "testing");  // "Test2 { b: "testing" }"
  EXPECT_EQ(hex(text.bytes()), "12 07 74 65 73 74 69 6e 67");

  ProtoWriter outer;
  outer.add_message(3, varint);  // "Test3 { c { a: 150 } }"
  EXPECT_EQ(hex(outer.bytes()), "1a 03 08 96 01");
}

TEST(ProtoWriter, EncodesLargeFieldNumbersAndNegativeInts) {
  ProtoWriter writer;
  writer.add_bool(87, true);  // tag (87 << 3) = 696 needs two bytes
  EXPECT_EQ(hex(writer.bytes()), "b8 05 01");
  ProtoWriter negative;
  negative.add_int(1, -1);  // int64 -1: ten bytes, all continuation bits but the last
  EXPECT_EQ(hex(negative.bytes()), "08 ff ff ff ff ff ff ff ff ff 01");
}

TEST(ProtoWriter, ProtocDecodesRandomFields) {
  TempDir dir;
  std::mt19937_64 rng(12345);
  ProtoWriter writer;
  std::vector<std::pair<uint32_t, uint64_t>> expected;
  for (int i = 0; i < 40; ++i) {
    const uint32_t field = 1 + static_cast<uint32_t>(rng() % 2000);
    const uint64_t value = rng() >> (rng() % 64);  // spread over every varint length
    writer.add_varint(field, value);
    expected.emplace_back(field, value);
  }
  {
    std::ofstream out(dir / "fields.bin", std::ios::binary);
    out << writer.bytes();
  }
  FILE* pipe = popen(("protoc --decode_raw < '" + (dir / "fields.bin").string() + "'").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string text;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, got);
  ASSERT_EQ(pclose(pipe), 0);
  // protoc --decode_raw prints fields in the order they appear: "field: value" per line.
  std::istringstream lines(text);
  std::string line;
  size_t index = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(index, expected.size());
    const size_t colon = line.find(": ");
    ASSERT_NE(colon, std::string::npos) << line;
    EXPECT_EQ(std::stoul(line.substr(0, colon)), expected[index].first) << line;
    EXPECT_EQ(std::stoull(line.substr(colon + 2)), expected[index].second) << line;
    ++index;
  }
  EXPECT_EQ(index, expected.size());
}
