#include "gpu/transfer.h"

#include <algorithm>
#include <cstring>

#include "gpu/native.h"
#include "meganeura/error.h"

namespace meganeura::gpu {
namespace {

// Staging is reused in chunks of this size, so a large upload does not need a second copy of it.
constexpr uint64_t kStagingChunk = 64ull << 20;

void check_range(const Buffer& buffer, uint64_t offset, uint64_t size, const char* what) {
  if (!buffer.valid()) throw Error(std::string(what) + ": the buffer is empty (default-constructed or moved from)");
  if (offset > buffer.size() || size > buffer.size() - offset) {
    throw Error(std::string(what) + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + size) +
                ") lie outside buffer \"" + buffer.label() + "\" of " + std::to_string(buffer.size()) + " bytes");
  }
}

}  // namespace

void upload(const Buffer& buffer, uint64_t offset, std::span<const std::byte> bytes) {
  check_range(buffer, offset, bytes.size(), "gpu::upload");
  if (bytes.empty()) return;
  if (buffer.mapped()) {
    std::memcpy(buffer.mapped() + offset, bytes.data(), bytes.size());
    return;
  }
  NativeContext& n = buffer.context().native();
  std::lock_guard lock(n.queue_mutex);
  for (uint64_t done = 0; done < bytes.size();) {
    const uint64_t chunk = std::min<uint64_t>(bytes.size() - done, kStagingChunk);
    NativeBuffer& staging = n.staging_buffer(std::min<uint64_t>(bytes.size(), kStagingChunk));
    std::memcpy(staging.mapped, bytes.data() + done, chunk);
    n.run_one_shot([&](VkCommandBuffer commands) {
      VkBufferCopy region{0, offset + done, chunk};
      vkCmdCopyBuffer(commands, staging.buffer, buffer.native().buffer, 1, &region);
    });
    done += chunk;
  }
}

void download(const Buffer& buffer, uint64_t offset, std::span<std::byte> bytes) {
  check_range(buffer, offset, bytes.size(), "gpu::download");
  if (bytes.empty()) return;
  if (buffer.mapped()) {
    std::memcpy(bytes.data(), buffer.mapped() + offset, bytes.size());
    return;
  }
  NativeContext& n = buffer.context().native();
  std::lock_guard lock(n.queue_mutex);
  for (uint64_t done = 0; done < bytes.size();) {
    const uint64_t chunk = std::min<uint64_t>(bytes.size() - done, kStagingChunk);
    NativeBuffer& staging = n.staging_buffer(std::min<uint64_t>(bytes.size(), kStagingChunk));
    n.run_one_shot([&](VkCommandBuffer commands) {
      VkBufferCopy region{offset + done, 0, chunk};
      vkCmdCopyBuffer(commands, buffer.native().buffer, staging.buffer, 1, &region);
      auto to_host = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
      to_host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0,
                           nullptr, 0, nullptr);
    });
    std::memcpy(bytes.data() + done, staging.mapped, chunk);
    done += chunk;
  }
}

void fill(const Buffer& buffer, uint32_t pattern, uint64_t offset, uint64_t size) {
  if (size == BufferRange::whole) size = buffer.size() - std::min(offset, buffer.size());
  check_range(buffer, offset, size, "gpu::fill");
  if (offset % 4 != 0 || size % 4 != 0) {
    throw Error("gpu::fill: offset " + std::to_string(offset) + " and size " + std::to_string(size) +
                " must be multiples of 4 (the pattern is 32 bits)");
  }
  if (size == 0) return;
  if (buffer.mapped()) {
    for (uint64_t i = 0; i < size; i += 4) std::memcpy(buffer.mapped() + offset + i, &pattern, 4);
    return;
  }
  NativeContext& n = buffer.context().native();
  std::lock_guard lock(n.queue_mutex);
  n.run_one_shot([&](VkCommandBuffer commands) {
    vkCmdFillBuffer(commands, buffer.native().buffer, offset, size, pattern);
  });
}

}  // namespace meganeura::gpu
