#include "gpu/arena.h"

#include <algorithm>

#include "gpu/context.h"
#include "meganeura/error.h"

namespace meganeura::gpu {

Arena::Arena(std::shared_ptr<Context> context, uint64_t block_bytes) : context_(std::move(context)) {
  if (!context_) throw Error("gpu::Arena: no context given");
  const auto& caps = context_->caps();
  block_limit_ = std::min<uint64_t>(caps.max_storage_buffer_range, caps.max_memory_allocation_bytes);
  min_alignment_ = std::max<uint64_t>(caps.min_storage_buffer_offset_alignment, 4);
  // Keep the block limit aligned so that a slice starting at a block's end-aligned offset fits.
  block_limit_ -= block_limit_ % min_alignment_;
  block_bytes_ = std::min<uint64_t>(block_bytes ? block_bytes : (256ull << 20), block_limit_);
}

ArenaSlice Arena::allocate(uint64_t size_bytes, uint64_t alignment) {
  if (size_bytes == 0) throw Error("gpu::Arena::allocate: a slice needs at least one byte");
  if (alignment != 0 && (alignment & (alignment - 1)) != 0) {
    throw Error("gpu::Arena::allocate: alignment " + std::to_string(alignment) + " is not a power of two");
  }
  alignment = std::max(alignment, min_alignment_);
  if (size_bytes > block_limit_) {
    throw OutOfMemoryError("cannot place " + std::to_string(size_bytes) + " bytes (" + format_bytes(size_bytes) +
                           ") in one arena block: \"" + context_->device().name + "\" binds at most " +
                           std::to_string(block_limit_) + " bytes (" + format_bytes(block_limit_) +
                           ") per storage buffer; split the tensor (heap size " +
                           format_bytes(context_->caps().largest_device_local_heap()) + ")");
  }
  for (uint32_t i = 0; i < blocks_.size(); ++i) {
    Block& block = blocks_[i];
    const uint64_t offset = (block.used + alignment - 1) / alignment * alignment;
    if (offset + size_bytes <= block.buffer.size()) {
      block.used = offset + size_bytes;
      return {i, offset, size_bytes};
    }
  }
  const uint64_t size = std::max(block_bytes_, size_bytes);
  blocks_.push_back({Buffer(context_, size, MemoryKind::DeviceLocal, "arena block " + std::to_string(blocks_.size())),
                     size_bytes});
  return {uint32_t(blocks_.size() - 1), 0, size_bytes};
}

BufferRange Arena::range(const ArenaSlice& slice) const {
  return {&blocks_.at(slice.block).buffer, slice.offset, slice.size};
}

uint64_t Arena::bytes_reserved() const {
  uint64_t total = 0;
  for (const auto& block : blocks_) total += block.buffer.size();
  return total;
}

uint64_t Arena::bytes_used() const {
  uint64_t total = 0;
  for (const auto& block : blocks_) total += block.used;
  return total;
}

void Arena::reset() {
  for (auto& block : blocks_) block.used = 0;
}

}  // namespace meganeura::gpu
