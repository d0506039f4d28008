// VkResult → exceptions.
#include "meganeura/error.h"
#include "gpu/native.h"

namespace meganeura::gpu {

const char* result_name(VkResult result) {
  switch (result) {
#define MEGANEURA_RESULT(name) \
  case name:                   \
    return #name;
    MEGANEURA_RESULT(VK_SUCCESS)
    MEGANEURA_RESULT(VK_NOT_READY)
    MEGANEURA_RESULT(VK_TIMEOUT)
    MEGANEURA_RESULT(VK_EVENT_SET)
    MEGANEURA_RESULT(VK_EVENT_RESET)
    MEGANEURA_RESULT(VK_INCOMPLETE)
    MEGANEURA_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY)
    MEGANEURA_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    MEGANEURA_RESULT(VK_ERROR_INITIALIZATION_FAILED)
    MEGANEURA_RESULT(VK_ERROR_DEVICE_LOST)
    MEGANEURA_RESULT(VK_ERROR_MEMORY_MAP_FAILED)
    MEGANEURA_RESULT(VK_ERROR_LAYER_NOT_PRESENT)
    MEGANEURA_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT)
    MEGANEURA_RESULT(VK_ERROR_FEATURE_NOT_PRESENT)
    MEGANEURA_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER)
    MEGANEURA_RESULT(VK_ERROR_TOO_MANY_OBJECTS)
    MEGANEURA_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED)
    MEGANEURA_RESULT(VK_ERROR_FRAGMENTED_POOL)
    MEGANEURA_RESULT(VK_ERROR_UNKNOWN)
    MEGANEURA_RESULT(VK_ERROR_OUT_OF_POOL_MEMORY)
    MEGANEURA_RESULT(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    MEGANEURA_RESULT(VK_ERROR_FRAGMENTATION)
    MEGANEURA_RESULT(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
    MEGANEURA_RESULT(VK_PIPELINE_COMPILE_REQUIRED)
#undef MEGANEURA_RESULT
    default:
      return "VkResult(unknown)";
  }
}

void check(VkResult result, const char* call) {
  if (result == VK_SUCCESS) return;
  const std::string message = std::string(call) + " failed with " + result_name(result) + " (" +
                              std::to_string(static_cast<int>(result)) + ")";
  if (result == VK_ERROR_DEVICE_LOST) {
    throw DeviceLostError(message +
                          ": the GPU device was lost (driver reset or hang); create a new session "
                          "after the driver recovers");
  }
  if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY) {
    throw OutOfMemoryError(message + ": free memory or use smaller shapes");
  }
  throw Error(message);
}

}  // namespace meganeura::gpu
