// meganeura/trace.h — Perfetto traces of what the library does on the CPU and the GPU.
//
//   // Run with MEGANEURA_TRACE=run.pftrace, then open the file in https://ui.perfetto.dev
//   {
//     meganeura::trace::Scope scope("optimize");        // a CPU slice on this thread's track
//     meganeura::trace::Scope inner("saturate", "iteration 3");  // nested inside it
//   }
//   auto gpu = meganeura::trace::gpu_track("GPU: lavapipe");
//   meganeura::trace::gpu_slice(gpu, "matmul_bias_relu", "matmul+add+relu (fc1)", begin_ns, end_ns);
//
// Timestamps are trace::now_ns() (CLOCK_MONOTONIC); GPU timestamps must already be converted to that
// clock (VK_EXT_calibrated_timestamps offers it as VK_TIME_DOMAIN_CLOCK_MONOTONIC_EXT). With tracing
// off, every call returns after one relaxed atomic load and records nothing. Safe to call from any
// thread. The file is complete when the process exits normally, or after trace::stop().
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace meganeura::trace {

namespace detail {
inline constexpr int kUnknown = 0, kOff = 1, kOn = 2;
extern std::atomic<int> state;
bool start_from_environment();
void begin_slice(std::string_view name, std::string_view label, uint64_t& generation);
void end_slice(uint64_t generation);
}  // namespace detail

// True while a trace is being written: MEGANEURA_TRACE=<path> was set at the first call, or start()
// was called. Throws meganeura::Error if MEGANEURA_TRACE names a file that cannot be created.
inline bool enabled() {
  const int state = detail::state.load(std::memory_order_relaxed);
  if (state == detail::kUnknown) [[unlikely]] return detail::start_from_environment();
  return state == detail::kOn;
}

// The trace clock, CLOCK_MONOTONIC in nanoseconds.
uint64_t now_ns();

// Starts writing a trace to `path` (replacing a trace in progress), as MEGANEURA_TRACE does.
void start(const std::string& path);
// Closes open slices, completes the file and turns tracing off.
void stop();
// Writes everything recorded so far to the file; the file is a valid trace after this.
void flush();

// A CPU slice from construction to destruction on the calling thread's track. `label` is shown as
// the slice's "label" argument. Scopes nest like calls.
class Scope {
 public:
  explicit Scope(std::string_view name, std::string_view label = {}) {
    if (enabled()) detail::begin_slice(name, label, generation_);
  }
  ~Scope() {
    if (generation_) detail::end_slice(generation_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  uint64_t generation_ = 0;  // the trace this slice began in; 0 when tracing was off
};

// A zero-length event on the calling thread's track.
void instant(std::string_view name, std::string_view label = {});

// A timeline for GPU work, shown under the process. One track per name; a default-constructed
// track (what gpu_track returns while tracing is off) records nothing.
struct GpuTrack {
  uint64_t uuid = 0;
};
GpuTrack gpu_track(std::string_view name);

// One GPU slice [begin_ns, end_ns] in now_ns()'s clock, named after the kernel, with `label` (the
// graph nodes it fuses) as its argument. Slices on one track must not overlap partially. Throws
// meganeura::Error if end_ns < begin_ns.
void gpu_slice(const GpuTrack& track, std::string_view name, std::string_view label, uint64_t begin_ns,
               uint64_t end_ns);

}  // namespace meganeura::trace
