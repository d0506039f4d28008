#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "gpu/arena.h"
#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/transfer.h"
#include "meganeura/error.h"
#include "test_shaders.h"

namespace meganeura::gpu {
namespace {

using testing::random_floats;

// Uploads random bytes at an odd offset, reads them back and checks the bytes around stay as filled.
void round_trip(const Buffer& buffer) {
  const uint64_t offset = 12;
  const auto values = random_floats(1001, 7);
  fill(buffer, testing::kPoison);
  upload(buffer, offset, std::as_bytes(std::span(values)));
  std::vector<float> back(values.size());
  download(buffer, offset, std::as_writable_bytes(std::span(back)));
  EXPECT_EQ(std::memcmp(back.data(), values.data(), values.size() * 4), 0) << buffer.label();
  std::vector<float> all(buffer.size() / 4);
  download(buffer, 0, std::as_writable_bytes(std::span(all)));
  for (size_t i = 0; i < all.size(); ++i) {
    const bool inside = i >= offset / 4 && i < offset / 4 + values.size();
    if (!inside) {
      EXPECT_TRUE(testing::is_poison(all[i])) << buffer.label() << " element " << i;
    }
  }
}

TEST(GpuMemory, UploadAndDownloadRoundTripInEveryKind) {
  auto context = Context::shared();
  round_trip(Buffer(context, 4096 * 4, MemoryKind::HostVisible, "host-visible"));
  round_trip(Buffer(context, 4096 * 4, MemoryKind::DeviceLocal, "device-local"));
  round_trip(Buffer(context, 4096 * 4, MemoryKind::HostWritable, "host-writable"));
}

TEST(GpuMemory, HostWritableMemoryIsMappedWherePlainDeviceMemoryIsNot) {
  // As on a discrete GPU: device-local memory unmapped, but the device also offers device-local
  // memory the host can see (lavapipe: all of it), which host-writable buffers take and map.
  auto context = std::make_shared<Context>(ContextOptions{.map_device_local_memory = false});
  Buffer plain(context, 4096 * 4, MemoryKind::DeviceLocal, "plain");
  Buffer writable(context, 4096 * 4, MemoryKind::HostWritable, "writable");
  EXPECT_EQ(plain.mapped(), nullptr);
  EXPECT_NE(writable.mapped(), nullptr);
  round_trip(writable);
}

TEST(GpuMemory, UploadAndDownloadThroughStaging) {
  // Device-local memory that is never mapped takes the staging path, as on a discrete GPU.
  auto context = std::make_shared<Context>(ContextOptions{.map_device_local_memory = false});
  Buffer buffer(context, 4096 * 4, MemoryKind::DeviceLocal, "unmapped");
  EXPECT_EQ(buffer.mapped(), nullptr);
  round_trip(buffer);
}

TEST(GpuMemory, CopiesBetweenBuffersInOneSubmission) {
  auto context = std::make_shared<Context>(ContextOptions{.map_device_local_memory = false});
  Buffer a(context, 64 * 4, MemoryKind::DeviceLocal, "a");
  Buffer b(context, 64 * 4, MemoryKind::DeviceLocal, "b");
  Buffer c(context, 32 * 4, MemoryKind::HostVisible, "c");
  const auto values = random_floats(64, 3);
  upload(a, 0, std::as_bytes(std::span(values)));
  fill(b, testing::kPoison);
  // The second half of a into the first half of b, its first 32 values into c.
  const BufferCopy copies[] = {{{&a, 128, 128}, {&b, 0, 128}}, {{&a, 0, 128}, {&c, 0, 128}}};
  copy(copies);
  std::vector<float> back(64), host(32);
  download(b, 0, std::as_writable_bytes(std::span(back)));
  download(c, 0, std::as_writable_bytes(std::span(host)));
  for (size_t i = 0; i < 32; ++i) {
    EXPECT_EQ(back[i], values[32 + i]) << i;
    EXPECT_TRUE(testing::is_poison(back[32 + i])) << i;
    EXPECT_EQ(host[i], values[i]) << i;
  }
  const BufferCopy uneven[] = {{{&a, 0, 128}, {&b, 0, 64}}};
  EXPECT_THROW(copy(uneven), Error);
}

TEST(GpuMemory, OutOfRangeTransfersAreErrors) {
  auto context = Context::shared();
  Buffer buffer(context, 64, MemoryKind::HostVisible, "small");
  std::vector<std::byte> bytes(65);
  try {
    upload(buffer, 0, bytes);
    FAIL() << "an upload past the end was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside buffer \"small\" of 64 bytes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(download(buffer, 60, std::span(bytes).subspan(0, 8)), Error);
  EXPECT_THROW(fill(buffer, 0, 2, 4), Error);
}

TEST(GpuMemory, ImpossibleAllocationNamesSizeAndHeap) {
  auto context = Context::shared();
  const uint64_t pebibyte = 1ull << 50;
  try {
    Buffer huge(context, pebibyte, MemoryKind::DeviceLocal, "huge");
    FAIL() << "a 1 PiB buffer was created";
  } catch (const OutOfMemoryError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(std::to_string(pebibyte) + " bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("1.0 PiB"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(context->caps().largest_device_local_heap()) + " bytes"), std::string::npos)
        << message;
  }
  EXPECT_THROW(Buffer(context, pebibyte, MemoryKind::HostVisible, "huge host"), OutOfMemoryError);
}

TEST(GpuMemory, BuffersMoveWithoutLeaks) {
  auto context = Context::shared();
  Buffer a(context, 256, MemoryKind::HostVisible, "a");
  const auto values = random_floats(64, 3);
  upload(a, 0, std::as_bytes(std::span(values)));
  Buffer b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.size(), 256u);
  std::vector<float> back(64);
  download(b, 0, std::as_writable_bytes(std::span(back)));
  EXPECT_EQ(back, values);
  b = Buffer(context, 128, MemoryKind::DeviceLocal, "c");
  EXPECT_EQ(b.label(), "c");
  EXPECT_THROW(upload(a, 0, std::as_bytes(std::span(values))), Error);
}

TEST(GpuArena, SlicesAreAlignedDisjointAndInsideTheirBlocks) {
  auto context = Context::shared();
  Arena arena(context, 64 * 1024);
  const uint64_t alignment = context->caps().min_storage_buffer_offset_alignment;
  std::vector<ArenaSlice> slices;
  for (uint64_t size : {100u, 4u, 3000u, 65536u, 17u, 40000u, 256u}) slices.push_back(arena.allocate(size));
  slices.push_back(arena.allocate(1000, 1024));
  EXPECT_EQ(slices.back().offset % 1024, 0u);
  for (size_t i = 0; i < slices.size(); ++i) {
    const auto& s = slices[i];
    EXPECT_EQ(s.offset % alignment, 0u);
    EXPECT_LE(s.offset + s.size, arena.block(s.block).size());
    for (size_t j = 0; j < i; ++j) {
      const auto& t = slices[j];
      if (s.block == t.block) {
        EXPECT_TRUE(s.offset + s.size <= t.offset || t.offset + t.size <= s.offset);
      }
    }
  }
  EXPECT_GE(arena.block_count(), 2u);  // 65536 + 40000 do not share a 64 KiB block
  EXPECT_GE(arena.bytes_reserved(), arena.bytes_used());

  // Every slice holds its own data.
  for (size_t i = 0; i < slices.size(); ++i) {
    std::vector<std::byte> bytes(slices[i].size, std::byte(i + 1));
    upload(arena.block(slices[i].block), slices[i].offset, bytes);
  }
  for (size_t i = 0; i < slices.size(); ++i) {
    std::vector<std::byte> bytes(slices[i].size);
    download(*arena.range(slices[i]).buffer, slices[i].offset, bytes);
    EXPECT_EQ(bytes.front(), std::byte(i + 1));
    EXPECT_EQ(bytes.back(), std::byte(i + 1));
  }
  const size_t blocks = arena.block_count();
  arena.reset();
  EXPECT_EQ(arena.bytes_used(), 0u);
  arena.allocate(100);
  EXPECT_EQ(arena.block_count(), blocks) << "reset keeps the blocks for reuse";
}

TEST(GpuArena, BlocksRespectTheBindingLimit) {
  auto context = Context::shared();
  Arena arena(context, ~0ull);
  EXPECT_LE(arena.block_limit(), context->caps().max_storage_buffer_range);
  EXPECT_LE(arena.block_limit(), context->caps().max_memory_allocation_bytes);
  try {
    arena.allocate(arena.block_limit() + 1);
    FAIL() << "a slice above the binding limit was accepted";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(arena.block_limit() + 1) + " bytes"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(arena.allocate(16, 3), Error);
  EXPECT_EQ(arena.block_count(), 0u);
}

}  // namespace
}  // namespace meganeura::gpu
