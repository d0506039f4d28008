// gpu::Buffer — one VkBuffer with its own memory (RAII, move-only), usable as a storage buffer and as
// the source or destination of copies. Upload and readback go through gpu/transfer.h.
//
//   auto context = gpu::Context::shared();
//   gpu::Buffer weights(context, 4096 * sizeof(float), gpu::MemoryKind::DeviceLocal, "weights");
//   gpu::upload(weights, 0, std::as_bytes(std::span(host_values)));
//
// A request larger than the heap it would come from, or than the device's maximum allocation,
// throws meganeura::OutOfMemoryError naming the size asked and the heap size; so does a failed
// allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace meganeura::gpu {

class Context;
struct NativeBuffer;  // VkBuffer + VkDeviceMemory; see gpu/native.h

enum class MemoryKind {
  DeviceLocal,  // fastest for shaders; may or may not be visible to the host
  HostVisible,  // mapped, coherent, cached where possible: staging, readback, small shared state
  // Device-local memory the host can write directly (a discrete GPU's PCIe window), mapped, where
  // the device offers it and it has room; plain device-local otherwise. For a step's inputs and
  // small outputs: they then move by memcpy instead of a copy on the queue and a fence wait.
  HostWritable,
};

class Buffer {
 public:
  Buffer();  // empty: size() == 0, valid() == false
  Buffer(std::shared_ptr<Context> context, uint64_t size_bytes, MemoryKind kind, std::string label = {});
  ~Buffer();
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  bool valid() const { return native_ != nullptr; }
  uint64_t size() const { return size_; }
  MemoryKind kind() const { return kind_; }
  const std::string& label() const { return label_; }
  Context& context() const { return *context_; }
  const std::shared_ptr<Context>& context_ptr() const { return context_; }

  // Host pointer to the whole buffer when its memory is mapped (always for HostVisible; also for
  // DeviceLocal on devices whose device memory the host can see, such as lavapipe), else nullptr.
  std::byte* mapped() const { return mapped_; }

  NativeBuffer& native() const { return *native_; }

 private:
  void release();

  std::shared_ptr<Context> context_;
  std::unique_ptr<NativeBuffer> native_;
  uint64_t size_ = 0;
  MemoryKind kind_ = MemoryKind::DeviceLocal;
  std::string label_ = {};
  std::byte* mapped_ = nullptr;
};

// A byte range of a buffer, as bound to a shader or copied. size == whole means "to the end".
struct BufferRange {
  static constexpr uint64_t whole = ~0ull;
  const Buffer* buffer = nullptr;
  uint64_t offset = 0;
  uint64_t size = whole;

  uint64_t resolved_size() const { return size == whole ? buffer->size() - offset : size; }
};

// "1.5 GiB" — sizes in error messages and listings.
std::string format_bytes(uint64_t bytes);

}  // namespace meganeura::gpu
