// Moving bytes between the host and gpu::Buffers. Mapped buffers are copied directly; others go
// through a staging buffer and a copy on the queue, in chunks, and the call returns when the bytes
// have arrived.
//
//   std::vector<float> x = random_values(1024);
//   gpu::upload(buffer, 0, std::as_bytes(std::span(x)));
//   std::vector<float> back(1024);
//   gpu::download(buffer, 0, std::as_writable_bytes(std::span(back)));
//
// A const Buffer still names writable GPU memory: the handle is const, not the contents.
// The caller makes sure no queued GPU work uses the range meanwhile (Recording::run waits for its
// work, so calling these between runs is always safe). An out-of-range request throws
// meganeura::Error naming the buffer, the range and its size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "gpu/buffer.h"

namespace meganeura::gpu {

void upload(const Buffer& buffer, uint64_t offset, std::span<const std::byte> bytes);
void download(const Buffer& buffer, uint64_t offset, std::span<std::byte> bytes);

// Copies each source range into its destination range (equal sizes, same context) on the GPU, all
// in one submission, and returns when they are done: values move between buffers without a trip
// through the host.
struct BufferCopy {
  BufferRange source;
  BufferRange destination;
};
void copy(std::span<const BufferCopy> copies);

// Fills the range with a repeated 32-bit pattern (e.g. the bits of NaN, to poison outputs).
void fill(const Buffer& buffer, uint32_t pattern, uint64_t offset = 0, uint64_t size = BufferRange::whole);

}  // namespace meganeura::gpu
