// gpu::Context — one Vulkan instance, the chosen physical device, its logical device and one compute
// queue. No Vulkan types appear here: the handles live in gpu/native.h, which only src/gpu/ includes.
//
//   auto context = gpu::Context::shared();          // process-wide, created on first use
//   const compile::DeviceCaps& caps = context->caps();
//   std::cout << context->device().name << ", subgroup " << caps.subgroup_size << "\n";
//
// Device choice: MEGANEURA_DEVICE=<index|name substring> (case-insensitive) if set, otherwise the
// first discrete GPU, then integrated, virtual, CPU (lavapipe) in that order. MEGANEURA_VALIDATION=1
// enables VK_LAYER_KHRONOS_validation; every warning or error it emits goes to
// gpu::report_validation_message. Errors: no Vulkan driver or device → meganeura::Error naming the
// package to install; MEGANEURA_DEVICE matching nothing → meganeura::Error listing the devices.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "compile/device_caps.h"

namespace meganeura::gpu {

// One physical device as the driver reports it (for listings and `meganeura info`).
struct DeviceSummary {
  uint32_t index = 0;         // position in the driver's enumeration (what MEGANEURA_DEVICE takes)
  std::string name = {};
  std::string type = {};           // "discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  std::string api_version = {};    // "1.3.230"
  std::string driver_name = {};    // "NVIDIA", "llvmpipe" (empty before Vulkan 1.2)
  std::string driver_info = {};    // "580.95.05", "Mesa 22.3.6 (LLVM 15.0.6)"
  std::string driver_version = {}; // decoded per vendor convention
  std::string uuid = {};           // 32 hex digits of the device UUID
};

struct ContextOptions {
  // Index or case-insensitive name substring; unset → MEGANEURA_DEVICE, then automatic choice.
  std::optional<std::string> device = {};
  // Unset → validation_requested() (MEGANEURA_VALIDATION=1).
  std::optional<bool> validation = {};
  // Load and save a VkPipelineCache per device UUID in the cache folder (cache_directory()).
  bool persistent_pipeline_cache = true;
  // Map device-local memory when the host can see it (lavapipe, resizable BAR), so uploads are a
  // memcpy. false always goes through staging, as on a discrete GPU without such memory; tests use
  // it to exercise that path on lavapipe.
  bool map_device_local_memory = true;
};

struct NativeContext;  // Vulkan handles; see gpu/native.h

class Context {
 public:
  explicit Context(const ContextOptions& options = {});
  ~Context();  // waits for the device, saves the pipeline cache, destroys everything
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // A process-wide context with default options, created on first use and kept until exit, so
  // tests and several sessions share one device.
  static std::shared_ptr<Context> shared();

  // Every device the Vulkan drivers report (creates a short-lived instance without validation).
  static std::vector<DeviceSummary> list_devices();

  // Position in `devices` of the device a context would choose: `requested` (or MEGANEURA_DEVICE
  // when unset) as an index or name substring, else the most capable type. Throws Error listing the
  // devices when the request matches none.
  static size_t preferred_device(const std::vector<DeviceSummary>& devices,
                                 const std::optional<std::string>& requested = std::nullopt);

  const compile::DeviceCaps& caps() const;
  const DeviceSummary& device() const;
  const std::vector<DeviceSummary>& all_devices() const;  // as enumerated by this context's instance
  std::string instance_api_version() const;              // e.g. "1.3.239"
  std::vector<std::string> enabled_device_extensions() const;
  bool validation_enabled() const;

  // Writes the pipeline cache to disk now (it is also written when the context is destroyed).
  void save_pipeline_cache();

  // Blocks until the queue is idle.
  void wait_idle();

  // Vulkan handles and helpers for the other src/gpu files.
  NativeContext& native() { return *native_; }
  const NativeContext& native() const { return *native_; }

 private:
  std::unique_ptr<NativeContext> native_;
};

}  // namespace meganeura::gpu
