#include "gpu/gpu_clock.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gpu/native.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::gpu {
namespace {

bool has_device_extension(const NativeContext& n, const char* name) {
  return std::find(n.device_extensions.begin(), n.device_extensions.end(), name) != n.device_extensions.end();
}

// Reads the device clock and CLOCK_MONOTONIC together. False when the device cannot.
bool read_calibrated(NativeContext& n, uint64_t& gpu_ticks, uint64_t& cpu_ns, uint64_t& deviation_ns) {
  if (!has_device_extension(n, VK_EXT_CALIBRATED_TIMESTAMPS_EXTENSION_NAME)) return false;
  auto domains_of = reinterpret_cast<PFN_vkGetPhysicalDeviceCalibrateableTimeDomainsEXT>(
      vkGetInstanceProcAddr(n.instance, "vkGetPhysicalDeviceCalibrateableTimeDomainsEXT"));
  auto read = reinterpret_cast<PFN_vkGetCalibratedTimestampsEXT>(
      vkGetDeviceProcAddr(n.device, "vkGetCalibratedTimestampsEXT"));
  if (!domains_of || !read) return false;
  uint32_t count = 0;
  check(domains_of(n.physical, &count, nullptr), "vkGetPhysicalDeviceCalibrateableTimeDomainsEXT");
  std::vector<VkTimeDomainEXT> domains(count);
  check(domains_of(n.physical, &count, domains.data()), "vkGetPhysicalDeviceCalibrateableTimeDomainsEXT");
  domains.resize(count);
  auto offers = [&](VkTimeDomainEXT d) { return std::find(domains.begin(), domains.end(), d) != domains.end(); };
  if (!offers(VK_TIME_DOMAIN_DEVICE_EXT) || !offers(VK_TIME_DOMAIN_CLOCK_MONOTONIC_EXT)) return false;
  VkCalibratedTimestampInfoEXT infos[2];
  for (auto& info : infos) info = vk_struct<VkCalibratedTimestampInfoEXT>(VK_STRUCTURE_TYPE_CALIBRATED_TIMESTAMP_INFO_EXT);
  infos[0].timeDomain = VK_TIME_DOMAIN_DEVICE_EXT;
  infos[1].timeDomain = VK_TIME_DOMAIN_CLOCK_MONOTONIC_EXT;
  uint64_t values[2] = {}, deviation = 0;
  check(read(n.device, 2, infos, values, &deviation), "vkGetCalibratedTimestampsEXT");
  gpu_ticks = values[0];
  cpu_ns = values[1];
  deviation_ns = deviation;
  return true;
}

}  // namespace

GpuClock::GpuClock(Context& context) {
  NativeContext& n = context.native();
  if (!context.caps().supports_timestamps) {
    throw Error("gpu::GpuClock: the device '" + context.caps().device_name +
                "' has no timestamp queries, so GPU times cannot be placed on the trace clock");
  }
  period_ns_ = context.caps().timestamp_period_ns;
  mask_ = n.timestamp_valid_bits >= 64 ? ~0ull : ((1ull << n.timestamp_valid_bits) - 1);
  if (read_calibrated(n, gpu_ticks_, cpu_ns_, uncertainty_ns_)) {
    calibrated_ = true;
    return;
  }
  // Measured offset: a timestamp written by the GPU lies between the CPU readings around its submission.
  auto query_info = vk_struct<VkQueryPoolCreateInfo>(VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO);
  query_info.queryType = VK_QUERY_TYPE_TIMESTAMP;
  query_info.queryCount = 1;
  VkQueryPool pool = VK_NULL_HANDLE;
  check(vkCreateQueryPool(n.device, &query_info, nullptr, &pool), "vkCreateQueryPool");
  uint64_t best_round_trip = ~0ull;
  try {
    for (int attempt = 0; attempt < 5; ++attempt) {
      uint64_t before = 0, after = 0, ticks = 0;
      {
        std::lock_guard lock(n.queue_mutex);
        before = trace::now_ns();
        n.run_one_shot([&](VkCommandBuffer cb) {
          vkCmdResetQueryPool(cb, pool, 0, 1);
          vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, pool, 0);
        });
        after = trace::now_ns();
      }
      check(vkGetQueryPoolResults(n.device, pool, 0, 1, sizeof(ticks), &ticks, sizeof(ticks),
                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
            "vkGetQueryPoolResults");
      if (after - before < best_round_trip) {
        best_round_trip = after - before;
        gpu_ticks_ = ticks & mask_;
        cpu_ns_ = before + (after - before) / 2;
        uncertainty_ns_ = (after - before) / 2;
      }
    }
  } catch (...) {
    vkDestroyQueryPool(n.device, pool, nullptr);
    throw;
  }
  vkDestroyQueryPool(n.device, pool, nullptr);
}

uint64_t GpuClock::to_trace_ns(uint64_t ticks) const {
  // Signed tick distance from the reference reading, across a wrap of the valid bits.
  uint64_t forward = (ticks - gpu_ticks_) & mask_;
  int64_t delta = static_cast<int64_t>(forward);
  if (mask_ != ~0ull && forward > mask_ / 2) delta = static_cast<int64_t>(forward) - static_cast<int64_t>(mask_) - 1;
  const int64_t ns = static_cast<int64_t>(cpu_ns_) + std::llround(static_cast<double>(delta) * period_ns_);
  return ns <= 0 ? 0 : static_cast<uint64_t>(ns);
}

}  // namespace meganeura::gpu
