#include "gpu/context.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "gpu/disk_cache.h"
#include "gpu/native.h"
#include "gpu/validation.h"
#include "meganeura/error.h"

namespace meganeura::gpu {
namespace {

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";
constexpr const char* kNoDriverAdvice =
    "install the Vulkan driver for your GPU (NVIDIA: the proprietary driver; AMD/Intel: "
    "mesa-vulkan-drivers), or the package mesa-vulkan-drivers for lavapipe, a CPU fallback";

std::string version_string(uint32_t version) {
  return std::to_string(VK_API_VERSION_MAJOR(version)) + "." + std::to_string(VK_API_VERSION_MINOR(version)) +
         "." + std::to_string(VK_API_VERSION_PATCH(version));
}

// Vendors pack driver versions differently; NVIDIA uses 10.8.8.6 bits.
std::string driver_version_string(uint32_t vendor_id, uint32_t version) {
  if (vendor_id == 0x10DE) {
    return std::to_string(version >> 22) + "." + std::to_string((version >> 14) & 0xff) + "." +
           std::to_string((version >> 6) & 0xff);
  }
  return version_string(version);
}

const char* device_type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
  }
}

// Lower is preferred: discrete, integrated, virtual, CPU, anything else.
int type_preference(const std::string& type) {
  static const char* order[] = {"discrete GPU", "integrated GPU", "virtual GPU", "CPU"};
  for (int i = 0; i < 4; ++i) {
    if (type == order[i]) return i;
  }
  return 4;
}

std::string lowercase(std::string text) {
  for (char& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                               VkDebugUtilsMessageTypeFlagsEXT,
                                               const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
  if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    report_validation_message(data && data->pMessage ? data->pMessage : "(empty validation message)");
  }
  return VK_FALSE;
}

VkDebugUtilsMessengerCreateInfoEXT messenger_info() {
  auto info = vk_struct<VkDebugUtilsMessengerCreateInfoEXT>(VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT);
  info.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  info.pfnUserCallback = on_debug_message;
  return info;
}

std::vector<VkExtensionProperties> instance_extensions() {
  uint32_t count = 0;
  check(vkEnumerateInstanceExtensionProperties(nullptr, &count, nullptr), "vkEnumerateInstanceExtensionProperties");
  std::vector<VkExtensionProperties> extensions(count);
  check(vkEnumerateInstanceExtensionProperties(nullptr, &count, extensions.data()),
        "vkEnumerateInstanceExtensionProperties");
  extensions.resize(count);
  return extensions;
}

std::vector<VkExtensionProperties> device_extensions(VkPhysicalDevice device) {
  uint32_t count = 0;
  check(vkEnumerateDeviceExtensionProperties(device, nullptr, &count, nullptr), "vkEnumerateDeviceExtensionProperties");
  std::vector<VkExtensionProperties> extensions(count);
  check(vkEnumerateDeviceExtensionProperties(device, nullptr, &count, extensions.data()),
        "vkEnumerateDeviceExtensionProperties");
  extensions.resize(count);
  return extensions;
}

bool has_extension(const std::vector<VkExtensionProperties>& extensions, const char* name) {
  return std::any_of(extensions.begin(), extensions.end(),
                     [&](const VkExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

bool has_layer(const char* name) {
  uint32_t count = 0;
  check(vkEnumerateInstanceLayerProperties(&count, nullptr), "vkEnumerateInstanceLayerProperties");
  std::vector<VkLayerProperties> layers(count);
  check(vkEnumerateInstanceLayerProperties(&count, layers.data()), "vkEnumerateInstanceLayerProperties");
  return std::any_of(layers.begin(), layers.begin() + count,
                     [&](const VkLayerProperties& l) { return std::strcmp(l.layerName, name) == 0; });
}

struct Instance {
  VkInstance handle = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  std::string version;
};

Instance create_instance(bool validation) {
  uint32_t loader_version = VK_API_VERSION_1_0;
  if (vkEnumerateInstanceVersion(&loader_version) != VK_SUCCESS) loader_version = VK_API_VERSION_1_0;
  if (loader_version < VK_API_VERSION_1_1) {
    throw Error("the Vulkan loader supports only Vulkan " + version_string(loader_version) +
                "; Meganeura needs 1.1 or newer: update libvulkan1 and " + kNoDriverAdvice);
  }
  const auto available = instance_extensions();
  std::vector<const char*> extensions;
  VkInstanceCreateFlags flags = 0;
#ifdef VK_KHR_portability_enumeration
  // MoltenVK and other non-conformant drivers are listed only when asked for.
  if (has_extension(available, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
    extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }
#endif
  std::vector<const char*> layers;
  if (validation) {
    if (!has_layer(kValidationLayer)) {
      throw Error(std::string("MEGANEURA_VALIDATION=1 asks for ") + kValidationLayer +
                  ", which is not installed: install the package vulkan-validationlayers, or unset "
                  "MEGANEURA_VALIDATION");
    }
    if (!has_extension(available, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
      throw Error("MEGANEURA_VALIDATION=1 needs the instance extension VK_EXT_debug_utils, which the "
                  "Vulkan loader does not offer: update libvulkan1");
    }
    layers.push_back(kValidationLayer);
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }

  auto app = vk_struct<VkApplicationInfo>(VK_STRUCTURE_TYPE_APPLICATION_INFO);
  app.pApplicationName = "meganeura";
  app.pEngineName = "meganeura";
  app.apiVersion = std::min<uint32_t>(loader_version, VK_API_VERSION_1_3);
  auto info = vk_struct<VkInstanceCreateInfo>(VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO);
  info.flags = flags;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = uint32_t(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = uint32_t(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  // Messages emitted while the instance itself is created or destroyed reach the callback too.
  VkDebugUtilsMessengerCreateInfoEXT messenger = messenger_info();
  if (validation) info.pNext = &messenger;

  Instance instance;
  instance.version = version_string(loader_version);
  const VkResult result = vkCreateInstance(&info, nullptr, &instance.handle);
  if (result == VK_ERROR_INCOMPATIBLE_DRIVER) {
    throw Error(std::string("no Vulkan driver found (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER): ") +
                kNoDriverAdvice);
  }
  check(result, "vkCreateInstance");
  if (validation) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance.handle, "vkCreateDebugUtilsMessengerEXT"));
    if (!create) {
      vkDestroyInstance(instance.handle, nullptr);
      throw Error("vkCreateDebugUtilsMessengerEXT is missing although VK_EXT_debug_utils is enabled");
    }
    const VkResult created = create(instance.handle, &messenger, nullptr, &instance.messenger);
    if (created != VK_SUCCESS) {
      vkDestroyInstance(instance.handle, nullptr);
      check(created, "vkCreateDebugUtilsMessengerEXT");
    }
  }
  return instance;
}

void destroy_instance(Instance& instance) {
  if (instance.messenger) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance.handle, "vkDestroyDebugUtilsMessengerEXT"));
    if (destroy) destroy(instance.handle, instance.messenger, nullptr);
  }
  if (instance.handle) vkDestroyInstance(instance.handle, nullptr);
  instance = {};
}

std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
  uint32_t count = 0;
  check(vkEnumeratePhysicalDevices(instance, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devices(count);
  if (count) check(vkEnumeratePhysicalDevices(instance, &count, devices.data()), "vkEnumeratePhysicalDevices");
  devices.resize(count);
  if (devices.empty()) {
    throw Error(std::string("the Vulkan loader found no device: ") + kNoDriverAdvice);
  }
  return devices;
}

DeviceSummary summarize(VkPhysicalDevice device, uint32_t index) {
  auto properties = vk_struct<VkPhysicalDeviceProperties2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2);
  auto driver = vk_struct<VkPhysicalDeviceDriverProperties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES);
  auto ids = vk_struct<VkPhysicalDeviceIDProperties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES);
  VkPhysicalDeviceProperties basic;
  vkGetPhysicalDeviceProperties(device, &basic);
  properties.pNext = &ids;
  if (basic.apiVersion >= VK_API_VERSION_1_2) ids.pNext = &driver;
  vkGetPhysicalDeviceProperties2(device, &properties);
  const auto& p = properties.properties;
  DeviceSummary summary;
  summary.index = index;
  summary.name = p.deviceName;
  summary.type = device_type_name(p.deviceType);
  summary.vendor_id = p.vendorID;
  summary.device_id = p.deviceID;
  summary.api_version = version_string(p.apiVersion);
  summary.driver_version = driver_version_string(p.vendorID, p.driverVersion);
  if (basic.apiVersion >= VK_API_VERSION_1_2) {
    summary.driver_name = driver.driverName;
    summary.driver_info = driver.driverInfo;
  }
  summary.uuid = to_hex_uuid(ids.deviceUUID);
  return summary;
}

compile::MatrixComponent component_of(VkComponentTypeNV type) {
  using C = compile::MatrixComponent;
  switch (type) {
    case VK_COMPONENT_TYPE_FLOAT16_NV: return C::Float16;
    case VK_COMPONENT_TYPE_FLOAT32_NV: return C::Float32;
    case VK_COMPONENT_TYPE_FLOAT64_NV: return C::Float64;
    case VK_COMPONENT_TYPE_SINT8_NV: return C::Int8;
    case VK_COMPONENT_TYPE_SINT32_NV: return C::Int32;
    case VK_COMPONENT_TYPE_UINT8_NV: return C::UInt8;
    case VK_COMPONENT_TYPE_UINT32_NV: return C::UInt32;
    default: return C::Other;
  }
}

// The pipeline-cache blob begins with a header naming vendor, device and cache UUID; data from
// another driver is dropped before it reaches the driver.
bool pipeline_cache_matches(const std::vector<std::byte>& blob, const VkPhysicalDeviceProperties& p) {
  if (blob.size() < 32) return false;
  uint32_t header[4];
  std::memcpy(header, blob.data(), sizeof(header));
  if (header[0] < 32 || header[1] != VK_PIPELINE_CACHE_HEADER_VERSION_ONE) return false;
  if (header[2] != p.vendorID || header[3] != p.deviceID) return false;
  return std::memcmp(blob.data() + 16, p.pipelineCacheUUID, VK_UUID_SIZE) == 0;
}

}  // namespace

std::string to_hex_uuid(const uint8_t* uuid) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint32_t i = 0; i < VK_UUID_SIZE; ++i) {
    out += digits[uuid[i] >> 4];
    out += digits[uuid[i] & 15];
  }
  return out;
}

size_t Context::preferred_device(const std::vector<DeviceSummary>& summaries, const std::optional<std::string>& requested) {
  std::string wanted;
  if (requested) {
    wanted = *requested;
  } else if (const char* env = std::getenv("MEGANEURA_DEVICE"); env && *env) {
    wanted = env;
  }
  if (!wanted.empty()) {
    const bool is_index = std::all_of(wanted.begin(), wanted.end(), [](char c) { return std::isdigit(uint8_t(c)); });
    if (is_index) {
      const unsigned long index = std::strtoul(wanted.c_str(), nullptr, 10);
      if (index < summaries.size()) return index;
    } else {
      for (size_t i = 0; i < summaries.size(); ++i) {
        if (lowercase(summaries[i].name).find(lowercase(wanted)) != std::string::npos) return i;
      }
    }
    std::string listing;
    for (const auto& s : summaries) listing += "\n  " + std::to_string(s.index) + ": " + s.name + " (" + s.type + ")";
    throw Error("MEGANEURA_DEVICE=\"" + wanted + "\" matches no Vulkan device; give an index or part of a name of:" +
                listing);
  }
  size_t best = 0;
  int best_rank = 1 << 30;
  for (size_t i = 0; i < summaries.size(); ++i) {
    const int rank = type_preference(summaries[i].type);
    if (rank < best_rank) {
      best_rank = rank;
      best = i;
    }
  }
  return best;
}

VkResult wait_for_fence(VkDevice device, VkFence fence) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const VkResult status = vkGetFenceStatus(device, fence);
    if (status != VK_NOT_READY) return status;
    if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(20)) {
      return vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX);
    }
    std::this_thread::yield();
  }
}

void NativeContext::run_one_shot(const std::function<void(VkCommandBuffer)>& record) {
  check(vkResetCommandBuffer(transfer_commands, 0), "vkResetCommandBuffer");
  auto begin = vk_struct<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(transfer_commands, &begin), "vkBeginCommandBuffer");
  record(transfer_commands);
  check(vkEndCommandBuffer(transfer_commands), "vkEndCommandBuffer");
  auto submit = vk_struct<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &transfer_commands;
  check(vkQueueSubmit(queue, 1, &submit, transfer_fence), "vkQueueSubmit (transfer)");
  check(wait_for_fence(device, transfer_fence), "vkWaitForFences (transfer)");
  check(vkResetFences(device, 1, &transfer_fence), "vkResetFences");
}

NativeBuffer& NativeContext::staging_buffer(uint64_t size) {
  if (staging_size < size) {
    destroy_buffer(staging);
    staging_size = 0;
    staging = create_buffer(size, MemoryKind::HostVisible, "staging");
    staging_size = size;
  }
  return staging;
}

Context::Context(const ContextOptions& options) : native_(std::make_unique<NativeContext>()) {
  NativeContext& n = *native_;
  n.validation = options.validation.value_or(validation_requested());
  n.map_device_local_memory = options.map_device_local_memory;
  Instance instance = create_instance(n.validation);
  n.instance = instance.handle;
  n.messenger = instance.messenger;
  n.instance_version = instance.version;
  try {
    const auto devices = physical_devices(n.instance);
    for (uint32_t i = 0; i < devices.size(); ++i) n.all_devices.push_back(summarize(devices[i], i));
    const size_t chosen = preferred_device(n.all_devices, options.device);
    n.physical = devices[chosen];
    n.summary = n.all_devices[chosen];

    VkPhysicalDeviceProperties basic;
    vkGetPhysicalDeviceProperties(n.physical, &basic);
    n.device_api_version = basic.apiVersion;
    if (basic.apiVersion < VK_API_VERSION_1_1) {
      throw Error("the Vulkan device \"" + n.summary.name + "\" supports only Vulkan " + n.summary.api_version +
                  "; Meganeura needs 1.1 or newer: update its driver or pick another with MEGANEURA_DEVICE");
    }
    const bool v12 = basic.apiVersion >= VK_API_VERSION_1_2;
    const bool v13 = basic.apiVersion >= VK_API_VERSION_1_3;

    // Queue: a compute family, preferring one with timestamps.
    uint32_t family_count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(n.physical, &family_count, nullptr);
    std::vector<VkQueueFamilyProperties> families(family_count);
    vkGetPhysicalDeviceQueueFamilyProperties(n.physical, &family_count, families.data());
    int family = -1;
    for (uint32_t i = 0; i < family_count; ++i) {
      if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
      if (family < 0 || (families[family].timestampValidBits == 0 && families[i].timestampValidBits > 0)) {
        family = int(i);
      }
    }
    if (family < 0) throw Error("the Vulkan device \"" + n.summary.name + "\" has no compute queue");
    n.queue_family = uint32_t(family);
    n.timestamp_valid_bits = families[family].timestampValidBits;

    // Features: query what the device has, enable the useful subset of it.
    const auto available_extensions = device_extensions(n.physical);
    std::vector<const char*> extensions;
    const bool has_coop = has_extension(available_extensions, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    if (has_extension(available_extensions, "VK_KHR_portability_subset")) {
      extensions.push_back("VK_KHR_portability_subset");  // required when the device offers it
    }

    auto have = vk_struct<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
    auto have11 = vk_struct<VkPhysicalDeviceVulkan11Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES);
    auto have12 = vk_struct<VkPhysicalDeviceVulkan12Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES);
    auto have13 = vk_struct<VkPhysicalDeviceVulkan13Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES);
    auto have_coop = vk_struct<VkPhysicalDeviceCooperativeMatrixFeaturesNV>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV);
    auto have16 = vk_struct<VkPhysicalDevice16BitStorageFeatures>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
    {
      void** tail = &have.pNext;
      auto link = [&tail](auto& s) {
        *tail = &s;
        tail = &s.pNext;
      };
      if (v12) {
        link(have11);
        link(have12);
      } else {
        link(have16);
      }
      if (v13) link(have13);
      if (has_coop) link(have_coop);
      vkGetPhysicalDeviceFeatures2(n.physical, &have);
    }

    auto want = vk_struct<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
    auto want11 = vk_struct<VkPhysicalDeviceVulkan11Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES);
    auto want12 = vk_struct<VkPhysicalDeviceVulkan12Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES);
    auto want13 = vk_struct<VkPhysicalDeviceVulkan13Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES);
    auto want_coop = vk_struct<VkPhysicalDeviceCooperativeMatrixFeaturesNV>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV);
    auto want16 = vk_struct<VkPhysicalDevice16BitStorageFeatures>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
    want.features.shaderInt64 = have.features.shaderInt64;
    want.features.shaderInt16 = have.features.shaderInt16;
    want.features.shaderFloat64 = have.features.shaderFloat64;
    bool storage16 = false;
    if (v12) {
      want11.storageBuffer16BitAccess = have11.storageBuffer16BitAccess;
      want11.uniformAndStorageBuffer16BitAccess = have11.uniformAndStorageBuffer16BitAccess;
      want11.storagePushConstant16 = have11.storagePushConstant16;
      storage16 = have11.storageBuffer16BitAccess;
      want12.shaderFloat16 = have12.shaderFloat16;
      want12.shaderInt8 = have12.shaderInt8;
      want12.storageBuffer8BitAccess = have12.storageBuffer8BitAccess;
      want12.uniformAndStorageBuffer8BitAccess = have12.uniformAndStorageBuffer8BitAccess;
      want12.storagePushConstant8 = have12.storagePushConstant8;
      want12.vulkanMemoryModel = have12.vulkanMemoryModel;
      want12.vulkanMemoryModelDeviceScope = have12.vulkanMemoryModelDeviceScope;
      want12.hostQueryReset = have12.hostQueryReset;
      want12.scalarBlockLayout = have12.scalarBlockLayout;
      want12.shaderSubgroupExtendedTypes = have12.shaderSubgroupExtendedTypes;
      want12.bufferDeviceAddress = VK_FALSE;
    } else {
      want16.storageBuffer16BitAccess = have16.storageBuffer16BitAccess;
      want16.uniformAndStorageBuffer16BitAccess = have16.uniformAndStorageBuffer16BitAccess;
      storage16 = have16.storageBuffer16BitAccess;
    }
    if (v13) {
      want13.subgroupSizeControl = have13.subgroupSizeControl;
      want13.computeFullSubgroups = have13.computeFullSubgroups;
      want13.maintenance4 = have13.maintenance4;
      want13.synchronization2 = have13.synchronization2;
    }
    const bool coop = has_coop && have_coop.cooperativeMatrix;
    if (coop) {
      want_coop.cooperativeMatrix = VK_TRUE;
      extensions.push_back(VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    }
    // GPU trace slices line up with CPU time exactly where the device can read both clocks at once.
    if (has_extension(available_extensions, VK_EXT_CALIBRATED_TIMESTAMPS_EXTENSION_NAME)) {
      extensions.push_back(VK_EXT_CALIBRATED_TIMESTAMPS_EXTENSION_NAME);
    }
    {
      void** tail = &want.pNext;
      auto link = [&tail](auto& s) {
        *tail = &s;
        tail = &s.pNext;
      };
      if (v12) {
        link(want11);
        link(want12);
      } else {
        link(want16);
      }
      if (v13) link(want13);
      if (coop) link(want_coop);
    }

    const float priority = 1.0f;
    auto queue_info = vk_struct<VkDeviceQueueCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO);
    queue_info.queueFamilyIndex = n.queue_family;
    queue_info.queueCount = 1;
    queue_info.pQueuePriorities = &priority;
    auto device_info = vk_struct<VkDeviceCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO);
    device_info.pNext = &want;
    device_info.queueCreateInfoCount = 1;
    device_info.pQueueCreateInfos = &queue_info;
    device_info.enabledExtensionCount = uint32_t(extensions.size());
    device_info.ppEnabledExtensionNames = extensions.data();
    check(vkCreateDevice(n.physical, &device_info, nullptr, &n.device), "vkCreateDevice");
    for (const char* e : extensions) n.device_extensions.emplace_back(e);
    vkGetDeviceQueue(n.device, n.queue_family, 0, &n.queue);

    // Capabilities, read once.
    auto properties = vk_struct<VkPhysicalDeviceProperties2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2);
    auto subgroup = vk_struct<VkPhysicalDeviceSubgroupProperties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES);
    auto maintenance3 = vk_struct<VkPhysicalDeviceMaintenance3Properties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES);
    auto size_control = vk_struct<VkPhysicalDeviceSubgroupSizeControlProperties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES);
    auto maintenance4 = vk_struct<VkPhysicalDeviceMaintenance4Properties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES);
    // Compute units (NVIDIA SMs, AMD CUs) where the device says, for splitting small products into
    // whole waves; the extensions need only be offered to be queried.
    auto nv_sms = vk_struct<VkPhysicalDeviceShaderSMBuiltinsPropertiesNV>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV);
    auto amd_cores = vk_struct<VkPhysicalDeviceShaderCorePropertiesAMD>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD);
    const bool has_nv_sms = has_extension(available_extensions, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME);
    const bool has_amd_cores = has_extension(available_extensions, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME);
    properties.pNext = &subgroup;
    subgroup.pNext = &maintenance3;
    void** properties_tail = &maintenance3.pNext;
    if (v13) {
      maintenance3.pNext = &size_control;
      size_control.pNext = &maintenance4;
      properties_tail = &maintenance4.pNext;
    }
    if (has_nv_sms) {
      *properties_tail = &nv_sms;
      properties_tail = &nv_sms.pNext;
    }
    if (has_amd_cores) *properties_tail = &amd_cores;
    vkGetPhysicalDeviceProperties2(n.physical, &properties);
    const VkPhysicalDeviceLimits& limits = properties.properties.limits;
    vkGetPhysicalDeviceMemoryProperties(n.physical, &n.memory_properties);

    compile::DeviceCaps& caps = n.caps;
    caps.device_name = n.summary.name;
    caps.vendor_id = properties.properties.vendorID;
    caps.is_discrete = properties.properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    caps.is_cpu = properties.properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    caps.subgroup_size = caps.min_subgroup_size = caps.max_subgroup_size = subgroup.subgroupSize;
    caps.supports_subgroup_size_control = v13 && have13.subgroupSizeControl &&
                                          (size_control.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT);
    if (caps.supports_subgroup_size_control) {
      caps.min_subgroup_size = size_control.minSubgroupSize;
      caps.max_subgroup_size = size_control.maxSubgroupSize;
    }
    const bool compute_subgroups = subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT;
    caps.supports_subgroup_arithmetic =
        compute_subgroups && (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    caps.supports_subgroup_shuffle = compute_subgroups && (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    for (int i = 0; i < 3; ++i) {
      caps.max_workgroup_size[i] = limits.maxComputeWorkGroupSize[i];
      caps.max_compute_workgroup_count[i] = limits.maxComputeWorkGroupCount[i];
    }
    caps.max_workgroup_invocations = limits.maxComputeWorkGroupInvocations;
    if (has_nv_sms) caps.compute_units = nv_sms.shaderSMCount;
    if (has_amd_cores) {
      caps.compute_units = amd_cores.shaderEngineCount * amd_cores.shaderArraysPerEngineCount *
                           amd_cores.computeUnitsPerShaderArray;
    }
    caps.max_shared_memory_bytes = limits.maxComputeSharedMemorySize;
    caps.max_storage_buffer_range = limits.maxStorageBufferRange;
    caps.min_storage_buffer_offset_alignment = limits.minStorageBufferOffsetAlignment;
    caps.max_push_constant_bytes = limits.maxPushConstantsSize;
    caps.max_memory_allocation_bytes = maintenance3.maxMemoryAllocationSize;
    if (v13 && have13.maintenance4) n.max_buffer_size = maintenance4.maxBufferSize;
    caps.supports_fp16_arithmetic = v12 && have12.shaderFloat16;
    caps.supports_16bit_storage = storage16;
    caps.supports_int8 = v12 && have12.shaderInt8 && have12.storageBuffer8BitAccess;
    caps.supports_int64 = have.features.shaderInt64;
    caps.supports_timestamps = n.timestamp_valid_bits > 0 && limits.timestampPeriod > 0;
    caps.timestamp_period_ns = limits.timestampPeriod;
    caps.supports_cooperative_matrix = false;
    if (coop) {
      auto get_shapes = reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV>(
          vkGetInstanceProcAddr(n.instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV"));
      uint32_t count = 0;
      if (get_shapes && get_shapes(n.physical, &count, nullptr) == VK_SUCCESS && count > 0) {
        std::vector<VkCooperativeMatrixPropertiesNV> shapes(
            count, vk_struct<VkCooperativeMatrixPropertiesNV>(VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV));
        check(get_shapes(n.physical, &count, shapes.data()), "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
        for (uint32_t i = 0; i < count; ++i) {
          const auto& s = shapes[i];
          if (s.scope != VK_SCOPE_SUBGROUP_NV) continue;
          caps.cooperative_matrix_shapes.push_back({s.MSize, s.NSize, s.KSize, component_of(s.AType),
                                                    component_of(s.BType), component_of(s.CType),
                                                    component_of(s.DType)});
        }
        caps.supports_cooperative_matrix = !caps.cooperative_matrix_shapes.empty();
      }
    }
    for (uint32_t i = 0; i < n.memory_properties.memoryHeapCount; ++i) {
      const auto& heap = n.memory_properties.memoryHeaps[i];
      caps.memory_heaps.push_back({heap.size, (heap.flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});
    }

    // Pipeline cache, persisted per device (UUID) and driver.
    auto cache_info = vk_struct<VkPipelineCacheCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO);
    std::optional<std::vector<std::byte>> blob;
    if (options.persistent_pipeline_cache) {
      n.pipeline_cache_path = cache_directory() / "pipelines" /
                              (n.summary.uuid + "-" + to_hex_uuid(properties.properties.pipelineCacheUUID) + ".bin");
      blob = read_file(n.pipeline_cache_path);
      if (blob && pipeline_cache_matches(*blob, properties.properties)) {
        cache_info.initialDataSize = blob->size();
        cache_info.pInitialData = blob->data();
      }
    }
    check(vkCreatePipelineCache(n.device, &cache_info, nullptr, &n.pipeline_cache), "vkCreatePipelineCache");

    auto pool_info = vk_struct<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool_info.queueFamilyIndex = n.queue_family;
    check(vkCreateCommandPool(n.device, &pool_info, nullptr, &n.transfer_pool), "vkCreateCommandPool");
    auto alloc = vk_struct<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
    alloc.commandPool = n.transfer_pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(n.device, &alloc, &n.transfer_commands), "vkAllocateCommandBuffers");
    auto fence_info = vk_struct<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
    check(vkCreateFence(n.device, &fence_info, nullptr, &n.transfer_fence), "vkCreateFence");
  } catch (...) {
    if (n.device) {
      if (n.transfer_fence) vkDestroyFence(n.device, n.transfer_fence, nullptr);
      if (n.transfer_pool) vkDestroyCommandPool(n.device, n.transfer_pool, nullptr);
      if (n.pipeline_cache) vkDestroyPipelineCache(n.device, n.pipeline_cache, nullptr);
      vkDestroyDevice(n.device, nullptr);
    }
    destroy_instance(instance);
    throw;
  }
}

Context::~Context() {
  NativeContext& n = *native_;
  vkDeviceWaitIdle(n.device);
  try {
    save_pipeline_cache();
  } catch (const Error&) {
    // The cache only speeds up later runs; losing it is not worth failing a destructor.
  }
  n.destroy_buffer(n.staging);
  vkDestroyFence(n.device, n.transfer_fence, nullptr);
  vkDestroyCommandPool(n.device, n.transfer_pool, nullptr);
  vkDestroyPipelineCache(n.device, n.pipeline_cache, nullptr);
  vkDestroyDevice(n.device, nullptr);
  Instance instance{n.instance, n.messenger, {}};
  destroy_instance(instance);
}

std::shared_ptr<Context> Context::shared() {
  static std::mutex mutex;
  static std::shared_ptr<Context> context;
  std::lock_guard lock(mutex);
  if (!context) {
    context = std::make_shared<Context>();
    // A driver may register exit handlers of its own when it loads (inside the constructor above).
    // Exit handlers run in reverse order, so releasing the context from one registered after it
    // destroys the device while the driver is still intact, not during static destruction after it.
    static std::once_flag registered;
    std::call_once(registered, [] {
      std::atexit([] {
        std::lock_guard exit_lock(mutex);
        context.reset();
      });
    });
  }
  return context;
}

std::vector<DeviceSummary> Context::list_devices() {
  Instance instance = create_instance(false);
  std::vector<DeviceSummary> summaries;
  try {
    const auto devices = physical_devices(instance.handle);
    for (uint32_t i = 0; i < devices.size(); ++i) summaries.push_back(summarize(devices[i], i));
  } catch (...) {
    destroy_instance(instance);
    throw;
  }
  destroy_instance(instance);
  return summaries;
}

const compile::DeviceCaps& Context::caps() const { return native_->caps; }
const DeviceSummary& Context::device() const { return native_->summary; }
const std::vector<DeviceSummary>& Context::all_devices() const { return native_->all_devices; }
std::string Context::instance_api_version() const { return native_->instance_version; }
std::vector<std::string> Context::enabled_device_extensions() const { return native_->device_extensions; }
bool Context::validation_enabled() const { return native_->validation; }

void Context::save_pipeline_cache() {
  NativeContext& n = *native_;
  if (n.pipeline_cache_path.empty()) return;
  size_t size = 0;
  check(vkGetPipelineCacheData(n.device, n.pipeline_cache, &size, nullptr), "vkGetPipelineCacheData");
  std::vector<std::byte> blob(size);
  VkResult result = vkGetPipelineCacheData(n.device, n.pipeline_cache, &size, blob.data());
  if (result == VK_INCOMPLETE) return;  // grew meanwhile; the next save writes it
  check(result, "vkGetPipelineCacheData");
  blob.resize(size);
  if (size > 0) write_file_atomically(n.pipeline_cache_path, blob);
}

void Context::wait_idle() {
  std::lock_guard lock(native_->queue_mutex);
  check(vkQueueWaitIdle(native_->queue), "vkQueueWaitIdle");
}

}  // namespace meganeura::gpu
