// meganeura::list_devices — the public face of gpu::Context::list_devices.
#include "meganeura/device.h"

#include "gpu/context.h"
#include "meganeura/error.h"

namespace meganeura {

std::vector<DeviceInfo> list_devices() {
  const auto summaries = gpu::Context::list_devices();
  size_t preferred = summaries.size();
  try {
    preferred = gpu::Context::preferred_device(summaries);
  } catch (const Error&) {
    // MEGANEURA_DEVICE matches nothing: list the devices, prefer none (creating a session says why).
  }
  std::vector<DeviceInfo> devices;
  for (size_t i = 0; i < summaries.size(); ++i) {
    const auto& s = summaries[i];
    std::string driver = s.driver_name;
    if (!s.driver_info.empty()) driver += (driver.empty() ? "" : " ") + s.driver_info;
    if (driver.empty()) driver = "version " + s.driver_version;
    devices.push_back({s.index, s.name, s.type, s.api_version, driver, i == preferred});
  }
  return devices;
}

}  // namespace meganeura
