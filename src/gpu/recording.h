// gpu::Recording — a fixed sequence of dispatches, copies and barriers, recorded into one command
// buffer once and replayed many times (each replay waits on a fence before returning).
//
//   gpu::Recording step(context, {.timestamps = true});
//   step.dispatch(matmul, matmul_bindings, push_bytes, {m / 16, n / 16, 1}, "matmul");
//   step.barrier();                    // the next dispatch reads what matmul wrote
//   step.dispatch(relu, relu_bindings, {}, {count / 256, 1, 1}, "relu");
//   step.finish();
//   step.run(100);                     // 100 replays in one submission, then wait
//   std::vector<uint64_t> ns = step.dispatch_durations_ns();  // per dispatch, last replay
//
// Memory order: every replay starts with a full compute/transfer barrier (the previous replay's
// writes are visible) and ends with one toward the host, so buffers can be read right after run().
// Inside a replay, place barrier() wherever a command reads or overwrites what an earlier one wrote.
// Timestamp queries are recorded only when asked. VK_ERROR_DEVICE_LOST throws
// meganeura::DeviceLostError; other failures throw meganeura::Error naming the Vulkan call.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gpu/buffer.h"
#include "gpu/pipeline.h"

namespace meganeura::gpu {

struct RecordingOptions {
  bool timestamps = false;  // write a timestamp before and after every dispatch and copy
  // While a trace is being written, each completed replay's commands become slices on the GPU
  // track (needs timestamps).
  bool trace_slices = true;
};

struct NativeRecording;

class Recording {
 public:
  explicit Recording(std::shared_ptr<Context> context, const RecordingOptions& options = {});
  ~Recording();  // waits for its pending work
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

  // push_constants must be exactly pipeline.push_constant_bytes() long (or empty when it is 0).
  // The pipeline and the set must outlive the recording.
  void dispatch(const Pipeline& pipeline, const DescriptorSet& bindings,
                std::span<const std::byte> push_constants, std::array<uint32_t, 3> groups,
                std::string label = {});
  // Copies resolved_size() bytes; both ranges must be the same size.
  void copy(const BufferRange& source, const BufferRange& destination, std::string label = {});
  // Fills the range (offset and size multiples of 4) with a repeated 32-bit pattern, e.g. zeroes
  // for accumulators that every replay starts from.
  void fill(const BufferRange& range, uint32_t pattern, std::string label = {});
  // Full memory barrier between compute/transfer writes and later compute/transfer reads and writes.
  void barrier();
  // Barrier for one range only (cheaper on some drivers than a global one).
  void barrier(const BufferRange& range);

  void finish();                 // ends recording; required before run()
  void run(uint32_t times = 1);  // submits `times` replays at once and waits for them
  void submit(uint32_t times = 1);  // same without waiting; wait() before reading results
  void wait();

  bool finished() const { return finished_; }
  size_t command_count() const { return labels_.size(); }  // dispatches, copies and fills
  size_t barrier_count() const { return barriers_; }
  const std::vector<std::string>& labels() const { return labels_; }
  // Per command: the kernel (the pipeline's label), "copy" or "fill"; names the trace slices.
  const std::vector<std::string>& names() const { return names_; }
  uint32_t query_count() const;  // timestamp queries recorded (0 without timestamps); after finish()

  // Durations of each dispatch/copy/fill in the last completed replay (timestamps=true only, else
  // throws meganeura::Error). Devices without timestamps give an empty vector.
  std::vector<uint64_t> dispatch_durations_ns() const;

 private:
  void require_recording(const char* what) const;
  void trace_last_replay(const std::vector<uint64_t>& ticks);

  std::shared_ptr<Context> context_;
  std::unique_ptr<NativeRecording> native_;
  RecordingOptions options_;
  std::vector<std::string> labels_ = {};
  std::vector<std::string> names_ = {};
  size_t barriers_ = 0;
  bool finished_ = false;
  bool pending_ = false;
};

}  // namespace meganeura::gpu
