// gpu::Arena — device-local memory for activations and temporaries, handed out as aligned slices of a
// few large blocks. A block never exceeds what one storage-buffer binding may span
// (maxStorageBufferRange) nor one allocation (maxMemoryAllocationSize), so every slice can be bound
// whole to a shader.
//
//   gpu::Arena arena(context);
//   gpu::ArenaSlice x = arena.allocate(batch * 784 * sizeof(float));
//   gpu::BufferRange binding = arena.range(x);  // bind it, copy into it, ...
//
// Slices live as long as the arena; reset() forgets them all (the blocks are kept for reuse).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gpu/buffer.h"

namespace meganeura::gpu {

struct ArenaSlice {
  uint32_t block = 0;
  uint64_t offset = 0;  // within the block, a multiple of the requested alignment
  uint64_t size = 0;
};

class Arena {
 public:
  // block_bytes: preferred size of each block (0 → 256 MiB), always clamped to the device limits.
  explicit Arena(std::shared_ptr<Context> context, uint64_t block_bytes = 0);

  // alignment 0 → the device's minStorageBufferOffsetAlignment (the least a binding needs);
  // otherwise a power of two, raised to that minimum. A slice larger than the block limit throws
  // OutOfMemoryError naming both sizes.
  ArenaSlice allocate(uint64_t size_bytes, uint64_t alignment = 0);

  BufferRange range(const ArenaSlice& slice) const;
  const Buffer& block(uint32_t index) const { return blocks_.at(index).buffer; }
  size_t block_count() const { return blocks_.size(); }
  uint64_t block_limit() const { return block_limit_; }  // the largest a block may be
  uint64_t bytes_reserved() const;                     // sum of block sizes
  uint64_t bytes_used() const;                         // sum of the blocks' high-water marks

  void reset();

 private:
  struct Block {
    Buffer buffer;
    uint64_t used = 0;
  };
  std::shared_ptr<Context> context_;
  uint64_t block_bytes_;
  uint64_t block_limit_;
  uint64_t min_alignment_;
  std::vector<Block> blocks_ = {};
};

}  // namespace meganeura::gpu
