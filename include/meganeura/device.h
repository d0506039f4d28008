// meganeura/device.h — the Vulkan devices Meganeura can run on.
//
//   for (const meganeura::DeviceInfo& device : meganeura::list_devices()) {
//     std::cout << (device.preferred ? "* " : "  ") << device.index << ": " << device.name << " ("
//               << device.type << ", Vulkan " << device.vulkan_version << ")\n";
//   }
//
// The preferred device is the one sessions use: MEGANEURA_DEVICE=<index|name substring> when set,
// otherwise the first discrete GPU, then integrated, virtual, CPU. Throws meganeura::Error when no
// Vulkan driver is installed (the message names the package to install).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace meganeura {

struct DeviceInfo {
  uint32_t index = 0;             // what MEGANEURA_DEVICE takes
  std::string name = {};          // "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string type = {};          // "discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"
  std::string vulkan_version = {};  // "1.4.312"
  std::string driver = {};        // driver name and details, e.g. "NVIDIA 580.95.05"
  bool preferred = false;         // the device a session would use now
};

std::vector<DeviceInfo> list_devices();

}  // namespace meganeura
