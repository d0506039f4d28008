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

void copy(std::span<const BufferCopy> copies) {
  if (copies.empty()) return;
  for (const BufferCopy& c : copies) {
    check_range(*c.source.buffer, c.source.offset, c.source.resolved_size(), "gpu::copy (source)");
    check_range(*c.destination.buffer, c.destination.offset, c.destination.resolved_size(), "gpu::copy (destination)");
    if (c.source.resolved_size() != c.destination.resolved_size()) {
      throw Error("gpu::copy: " + std::to_string(c.source.resolved_size()) + " bytes from \"" + c.source.buffer->label() +
                  "\" into " + std::to_string(c.destination.resolved_size()) + " bytes of \"" +
                  c.destination.buffer->label() + "\"; the ranges must have the same size");
    }
    if (&c.source.buffer->context() != &copies[0].source.buffer->context() ||
        &c.destination.buffer->context() != &copies[0].source.buffer->context()) {
      throw Error("gpu::copy: \"" + c.source.buffer->label() + "\" and \"" + c.destination.buffer->label() +
                  "\" belong to different contexts; copy through the host instead");
    }
  }
  NativeContext& n = copies[0].source.buffer->context().native();
  std::lock_guard lock(n.queue_mutex);
  n.run_one_shot([&](VkCommandBuffer commands) {
    // Earlier submissions' writes (a session's step) become visible to the copies.
    auto from_work = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
    from_work.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    from_work.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &from_work, 0, nullptr, 0, nullptr);
    for (const BufferCopy& c : copies) {
      if (c.source.resolved_size() == 0) continue;
      VkBufferCopy region{c.source.offset, c.destination.offset, c.source.resolved_size()};
      vkCmdCopyBuffer(commands, c.source.buffer->native().buffer, c.destination.buffer->native().buffer, 1, &region);
    }
    // Host reads of mapped destinations see the copies once the fence signals.
    auto to_host = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
    to_host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0,
                         nullptr, 0, nullptr);
  });
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
