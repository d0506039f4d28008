// Vulkan handles behind the gpu:: classes, and the helpers the src/gpu files share. Only src/gpu/
// includes this header (and so <vulkan/vulkan.h>).
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "compile/device_caps.h"
#include "gpu/buffer.h"
#include "gpu/context.h"

namespace meganeura::gpu {

// Throws DeviceLostError for VK_ERROR_DEVICE_LOST, OutOfMemoryError for the out-of-memory codes and
// Error otherwise, each naming the call and the result code.
void check(VkResult result, const char* call);
const char* result_name(VkResult result);

// A Vulkan struct with its sType set and every other member zero.
template <class T>
T vk_struct(VkStructureType type) {
  T value{};
  value.sType = type;
  return value;
}

// 32 hex digits of a VK_UUID_SIZE-byte UUID.
std::string to_hex_uuid(const uint8_t* uuid);

// A buffer with its own memory; the pieces gpu::Buffer and the context's staging buffer share.
struct NativeBuffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  void* mapped = nullptr;  // persistently mapped when the memory type is host-visible
};

// Waits for a fence: polls it first (yielding the thread) for up to 20 ms, then blocks. A blocking
// wait returned up to 2.4 ms after a few-microsecond transfer on an NVIDIA driver, which doubled a
// SmolLM2 decode step that reads its token back (2.8 -> 5.2 ms) in some processes.
VkResult wait_for_fence(VkDevice device, VkFence fence);

struct NativeContext {
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t queue_family = 0;
  uint32_t timestamp_valid_bits = 0;
  uint32_t device_api_version = 0;
  uint64_t max_buffer_size = ~0ull;
  VkPhysicalDeviceMemoryProperties memory_properties{};
  VkPipelineCache pipeline_cache = VK_NULL_HANDLE;
  std::filesystem::path pipeline_cache_path;  // empty: not persisted

  compile::DeviceCaps caps;
  DeviceSummary summary;
  std::vector<DeviceSummary> all_devices;
  std::vector<std::string> device_extensions;
  std::string instance_version;
  bool validation = false;
  bool map_device_local_memory = true;

  // Queue submission and the one-shot transfer objects are used under this lock.
  std::mutex queue_mutex;
  VkCommandPool transfer_pool = VK_NULL_HANDLE;
  VkCommandBuffer transfer_commands = VK_NULL_HANDLE;
  VkFence transfer_fence = VK_NULL_HANDLE;
  NativeBuffer staging;
  uint64_t staging_size = 0;

  // Records commands with `record`, submits them and waits (holds queue_mutex throughout).
  void run_one_shot(const std::function<void(VkCommandBuffer)>& record);
  // A host-visible staging buffer of at least `size` bytes (queue_mutex must be held).
  NativeBuffer& staging_buffer(uint64_t size);

  // Creates a buffer of `size` bytes with memory of the given kind. Throws OutOfMemoryError when the
  // size exceeds the heap, the allocation limit or the allocation fails.
  NativeBuffer create_buffer(uint64_t size, MemoryKind kind, const std::string& label);
  void destroy_buffer(NativeBuffer& buffer);
};

struct NativePipeline {
  VkDevice device = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

struct NativeDescriptorSet {
  VkDevice device = VK_NULL_HANDLE;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VkDescriptorSet set = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;  // of the pipeline it was made for
};

}  // namespace meganeura::gpu
