// gpu::GpuClock — maps timestamp-query ticks onto trace::now_ns() (CLOCK_MONOTONIC), so GPU slices
// line up with the CPU slices of the same trace.
//
//   gpu::GpuClock clock(*context);             // calibrates once
//   uint64_t cpu_ns = clock.to_trace_ns(ticks); // a value read from a timestamp query
//
// With VK_EXT_calibrated_timestamps and a CLOCK_MONOTONIC time domain the device reads both clocks
// at once; otherwise a timestamp is written on the GPU between two CPU readings and the midpoint
// is taken (the shortest of a few round trips, so the error stays under half of it).
#pragma once

#include <cstdint>

#include "gpu/context.h"

namespace meganeura::gpu {

class GpuClock {
 public:
  explicit GpuClock(Context& context);

  uint64_t to_trace_ns(uint64_t ticks) const;
  bool calibrated() const { return calibrated_; }  // true: from VK_EXT_calibrated_timestamps
  uint64_t uncertainty_ns() const { return uncertainty_ns_; }

 private:
  double period_ns_ = 1;
  uint64_t mask_ = ~0ull;
  uint64_t gpu_ticks_ = 0;  // a device reading taken at cpu_ns_
  uint64_t cpu_ns_ = 0;
  uint64_t uncertainty_ns_ = 0;
  bool calibrated_ = false;
};

}  // namespace meganeura::gpu
