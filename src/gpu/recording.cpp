#include "gpu/recording.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <variant>

#include "gpu/gpu_clock.h"
#include "gpu/native.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::gpu {
namespace {

struct DispatchCommand {
  VkPipeline pipeline;
  VkPipelineLayout layout;
  VkDescriptorSet set;
  std::vector<std::byte> push_constants;
  std::array<uint32_t, 3> groups;
};
struct CopyCommand {
  VkBuffer source, destination;
  VkBufferCopy region;
};
struct FillCommand {
  VkBuffer buffer;
  uint64_t offset, size;
  uint32_t pattern;
};
struct BarrierCommand {
  VkBuffer buffer;  // VK_NULL_HANDLE: a global memory barrier
  uint64_t offset, size;
};
using Command = std::variant<DispatchCommand, CopyCommand, FillCommand, BarrierCommand>;

constexpr VkPipelineStageFlags kWorkStages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
constexpr VkAccessFlags kWrites = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
constexpr VkAccessFlags kReadsAndWrites =
    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;

void global_barrier(VkCommandBuffer commands, VkPipelineStageFlags dst_stages, VkAccessFlags dst_access) {
  auto barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = kWrites;
  barrier.dstAccessMask = dst_access;
  vkCmdPipelineBarrier(commands, kWorkStages, dst_stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

// Pipeline stages a command runs in (none for a barrier).
VkPipelineStageFlags stages_of(const Command& command) {
  if (std::holds_alternative<DispatchCommand>(command)) return VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
  if (std::holds_alternative<BarrierCommand>(command)) return 0;
  return VK_PIPELINE_STAGE_TRANSFER_BIT;
}

VkAccessFlags writes_of(VkPipelineStageFlags stages) {
  return ((stages & VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT) ? VK_ACCESS_SHADER_WRITE_BIT : 0) |
         ((stages & VK_PIPELINE_STAGE_TRANSFER_BIT) ? VK_ACCESS_TRANSFER_WRITE_BIT : 0);
}

VkAccessFlags reads_and_writes_of(VkPipelineStageFlags stages) {
  return ((stages & VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT) ? VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT : 0) |
         ((stages & VK_PIPELINE_STAGE_TRANSFER_BIT) ? VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT : 0);
}

// For the barrier at `at`: the stages of the commands since the previous barrier (source) and up
// to the next one (destination). A barrier between dispatches only then orders compute alone, which
// costs the GPU less than also waiting on the transfer stage. Empty sides fall back to compute.
std::pair<VkPipelineStageFlags, VkPipelineStageFlags> barrier_stages(const std::vector<Command>& commands,
                                                                     size_t at) {
  VkPipelineStageFlags before = 0, after = 0;
  for (size_t i = at; i-- > 0 && !std::holds_alternative<BarrierCommand>(commands[i]);) before |= stages_of(commands[i]);
  for (size_t i = at + 1; i < commands.size() && !std::holds_alternative<BarrierCommand>(commands[i]); ++i) {
    after |= stages_of(commands[i]);
  }
  if (!before) before = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
  if (!after) after = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
  return {before, after};
}

}  // namespace

struct NativeRecording {
  VkDevice device = VK_NULL_HANDLE;
  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandBuffer commands = VK_NULL_HANDLE;
  // The barrier that makes results readable by the host, submitted once after the last replay
  // rather than inside every replay (where the next replay's leading barrier already orders them).
  VkCommandBuffer host_visible = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  VkQueryPool queries = VK_NULL_HANDLE;
  std::vector<Command> recorded;
  std::vector<uint64_t> durations_ns;
  bool have_durations = false;
  std::optional<GpuClock> clock;  // made at the first traced replay
};

Recording::Recording(std::shared_ptr<Context> context, const RecordingOptions& options)
    : context_(std::move(context)), native_(std::make_unique<NativeRecording>()), options_(options) {
  if (!context_) throw Error("gpu::Recording: no context given");
  native_->device = context_->native().device;
}

Recording::~Recording() {
  NativeRecording& r = *native_;
  if (pending_) vkWaitForFences(r.device, 1, &r.fence, VK_TRUE, UINT64_MAX);
  if (r.queries) vkDestroyQueryPool(r.device, r.queries, nullptr);
  if (r.fence) vkDestroyFence(r.device, r.fence, nullptr);
  if (r.pool) vkDestroyCommandPool(r.device, r.pool, nullptr);  // frees the command buffers
}

void Recording::require_recording(const char* what) const {
  if (finished_) throw Error(std::string("gpu::Recording::") + what + ": the recording is finished; record a new one");
}

void Recording::dispatch(const Pipeline& pipeline, const DescriptorSet& bindings,
                         std::span<const std::byte> push_constants, std::array<uint32_t, 3> groups, std::string label) {
  require_recording("dispatch");
  if (label.empty()) label = pipeline.label();
  const std::string what = "gpu::Recording::dispatch(\"" + label + "\")";
  if (&pipeline.context() != context_.get()) throw Error(what + ": the pipeline belongs to another gpu::Context");
  if (bindings.native().layout != pipeline.native().layout) {
    throw Error(what + ": the descriptor set was made for another pipeline");
  }
  if (push_constants.size() != pipeline.push_constant_bytes()) {
    throw Error(what + ": " + std::to_string(push_constants.size()) + " bytes of push constants, the pipeline takes " +
                std::to_string(pipeline.push_constant_bytes()));
  }
  const auto& limits = context_->caps().max_compute_workgroup_count;
  for (int i = 0; i < 3; ++i) {
    if (groups[i] > limits[i]) {
      throw Error(what + ": " + std::to_string(groups[i]) + " workgroups along axis " + std::to_string(i) +
                  " exceed the device limit of " + std::to_string(limits[i]) + " (maxComputeWorkGroupCount)");
    }
  }
  native_->recorded.push_back(DispatchCommand{pipeline.native().pipeline, pipeline.native().layout,
                                              bindings.native().set,
                                              std::vector<std::byte>(push_constants.begin(), push_constants.end()),
                                              groups});
  labels_.push_back(std::move(label));
  names_.push_back(pipeline.label().empty() ? "dispatch" : pipeline.label());
}

void Recording::copy(const BufferRange& source, const BufferRange& destination, std::string label) {
  require_recording("copy");
  if (label.empty()) label = "copy";
  const std::string what = "gpu::Recording::copy(\"" + label + "\")";
  if (!source.buffer || !destination.buffer || !source.buffer->valid() || !destination.buffer->valid()) {
    throw Error(what + ": missing buffer");
  }
  const uint64_t size = source.resolved_size();
  if (source.offset > source.buffer->size() || size > source.buffer->size() - source.offset ||
      destination.offset > destination.buffer->size() || destination.resolved_size() != size ||
      size > destination.buffer->size() - destination.offset || size == 0) {
    throw Error(what + ": the ranges must be non-empty, of equal size and inside their buffers (source \"" +
                source.buffer->label() + "\" at " + std::to_string(source.offset) + ", destination \"" +
                destination.buffer->label() + "\" at " + std::to_string(destination.offset) + ", " +
                std::to_string(size) + " bytes)");
  }
  native_->recorded.push_back(CopyCommand{source.buffer->native().buffer, destination.buffer->native().buffer,
                                          VkBufferCopy{source.offset, destination.offset, size}});
  labels_.push_back(std::move(label));
  names_.push_back("copy");
}

void Recording::fill(const BufferRange& range, uint32_t pattern, std::string label) {
  require_recording("fill");
  if (label.empty()) label = "fill";
  const std::string what = "gpu::Recording::fill(\"" + label + "\")";
  if (!range.buffer || !range.buffer->valid()) throw Error(what + ": missing buffer");
  const uint64_t size = range.resolved_size();
  if (range.offset > range.buffer->size() || size > range.buffer->size() - range.offset || size == 0 ||
      range.offset % 4 != 0 || size % 4 != 0) {
    throw Error(what + ": " + std::to_string(size) + " bytes at offset " + std::to_string(range.offset) +
                " of buffer \"" + range.buffer->label() + "\" (" + std::to_string(range.buffer->size()) +
                " bytes); the range must be non-empty, inside the buffer, and offset and size multiples of 4");
  }
  native_->recorded.push_back(FillCommand{range.buffer->native().buffer, range.offset, size, pattern});
  labels_.push_back(std::move(label));
  names_.push_back("fill");
}

void Recording::barrier() {
  require_recording("barrier");
  native_->recorded.push_back(BarrierCommand{VK_NULL_HANDLE, 0, 0});
  ++barriers_;
}

void Recording::barrier(const BufferRange& range) {
  require_recording("barrier");
  if (!range.buffer || !range.buffer->valid()) throw Error("gpu::Recording::barrier: missing buffer");
  native_->recorded.push_back(BarrierCommand{range.buffer->native().buffer, range.offset,
                                             range.size == BufferRange::whole ? VK_WHOLE_SIZE : range.size});
  ++barriers_;
}

void Recording::finish() {
  require_recording("finish");
  NativeContext& n = context_->native();
  NativeRecording& r = *native_;
  auto pool_info = vk_struct<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
  pool_info.queueFamilyIndex = n.queue_family;
  check(vkCreateCommandPool(r.device, &pool_info, nullptr, &r.pool), "vkCreateCommandPool");
  auto alloc = vk_struct<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
  alloc.commandPool = r.pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  check(vkAllocateCommandBuffers(r.device, &alloc, &r.commands), "vkAllocateCommandBuffers");
  check(vkAllocateCommandBuffers(r.device, &alloc, &r.host_visible), "vkAllocateCommandBuffers");
  auto fence_info = vk_struct<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
  check(vkCreateFence(r.device, &fence_info, nullptr, &r.fence), "vkCreateFence");
  const uint32_t timed = uint32_t(labels_.size());
  const bool timestamps = options_.timestamps && n.caps.supports_timestamps && timed > 0;
  if (timestamps) {
    auto query_info = vk_struct<VkQueryPoolCreateInfo>(VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO);
    query_info.queryType = VK_QUERY_TYPE_TIMESTAMP;
    query_info.queryCount = 2 * timed;
    check(vkCreateQueryPool(r.device, &query_info, nullptr, &r.queries), "vkCreateQueryPool");
  }

  VkCommandBuffer cb = r.commands;
  auto begin = vk_struct<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
  begin.flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT;  // one submission may replay it many times
  check(vkBeginCommandBuffer(cb, &begin), "vkBeginCommandBuffer");
  if (timestamps) vkCmdResetQueryPool(cb, r.queries, 0, 2 * timed);
  // The previous replay's (or upload's) writes become visible to this replay.
  global_barrier(cb, kWorkStages, kReadsAndWrites);
  uint32_t query = 0;
  for (size_t at = 0; at < r.recorded.size(); ++at) {
    const Command& command = r.recorded[at];
    if (const auto* barrier = std::get_if<BarrierCommand>(&command)) {
      const auto [src_stages, dst_stages] = barrier_stages(r.recorded, at);
      if (barrier->buffer == VK_NULL_HANDLE) {
        auto memory_barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
        memory_barrier.srcAccessMask = writes_of(src_stages);
        memory_barrier.dstAccessMask = reads_and_writes_of(dst_stages);
        vkCmdPipelineBarrier(cb, src_stages, dst_stages, 0, 1, &memory_barrier, 0, nullptr, 0, nullptr);
      } else {
        auto buffer_barrier = vk_struct<VkBufferMemoryBarrier>(VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER);
        buffer_barrier.srcAccessMask = writes_of(src_stages);
        buffer_barrier.dstAccessMask = reads_and_writes_of(dst_stages);
        buffer_barrier.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
        buffer_barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
        buffer_barrier.buffer = barrier->buffer;
        buffer_barrier.offset = barrier->offset;
        buffer_barrier.size = barrier->size;
        vkCmdPipelineBarrier(cb, src_stages, dst_stages, 0, 0, nullptr, 1, &buffer_barrier, 0, nullptr);
      }
      continue;
    }
    if (timestamps) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, r.queries, query);
    if (const auto* dispatch = std::get_if<DispatchCommand>(&command)) {
      vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, dispatch->pipeline);
      vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, dispatch->layout, 0, 1, &dispatch->set, 0, nullptr);
      if (!dispatch->push_constants.empty()) {
        vkCmdPushConstants(cb, dispatch->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                           uint32_t(dispatch->push_constants.size()), dispatch->push_constants.data());
      }
      vkCmdDispatch(cb, dispatch->groups[0], dispatch->groups[1], dispatch->groups[2]);
    } else if (const auto* copy = std::get_if<CopyCommand>(&command)) {
      vkCmdCopyBuffer(cb, copy->source, copy->destination, 1, &copy->region);
    } else if (const auto* fill = std::get_if<FillCommand>(&command)) {
      vkCmdFillBuffer(cb, fill->buffer, fill->offset, fill->size, fill->pattern);
    }
    if (timestamps) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, r.queries, query + 1);
    query += 2;
  }
  check(vkEndCommandBuffer(cb), "vkEndCommandBuffer");
  // Results can be read by the host (mapped buffers) once the fence signals.
  check(vkBeginCommandBuffer(r.host_visible, &begin), "vkBeginCommandBuffer");
  global_barrier(r.host_visible, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
  check(vkEndCommandBuffer(r.host_visible), "vkEndCommandBuffer");
  finished_ = true;
}

void Recording::submit(uint32_t times) {
  if (!finished_) throw Error("gpu::Recording::submit: call finish() before submitting");
  if (pending_) throw Error("gpu::Recording::submit: the previous submission is still pending; call wait() first");
  if (times == 0) return;
  NativeContext& n = context_->native();
  NativeRecording& r = *native_;
  std::vector<VkCommandBuffer> replays(times, r.commands);
  replays.push_back(r.host_visible);
  auto submit = vk_struct<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
  submit.commandBufferCount = uint32_t(replays.size());
  submit.pCommandBuffers = replays.data();
  {
    std::lock_guard lock(n.queue_mutex);
    check(vkQueueSubmit(n.queue, 1, &submit, r.fence), "vkQueueSubmit");
  }
  pending_ = true;
}

void Recording::wait() {
  if (!pending_) return;
  NativeRecording& r = *native_;
  const VkResult waited = wait_for_fence(r.device, r.fence);
  pending_ = false;
  check(waited, "vkWaitForFences");
  check(vkResetFences(r.device, 1, &r.fence), "vkResetFences");
  if (r.queries) {
    const uint32_t count = uint32_t(2 * labels_.size());
    std::vector<uint64_t> ticks(count);
    check(vkGetQueryPoolResults(r.device, r.queries, 0, count, count * sizeof(uint64_t), ticks.data(),
                                sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
          "vkGetQueryPoolResults");
    const uint32_t bits = context_->native().timestamp_valid_bits;
    const uint64_t mask = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
    const double period = context_->caps().timestamp_period_ns;
    r.durations_ns.resize(labels_.size());
    for (size_t i = 0; i < labels_.size(); ++i) {
      const uint64_t elapsed = (ticks[2 * i + 1] - ticks[2 * i]) & mask;
      r.durations_ns[i] = uint64_t(double(elapsed) * period + 0.5);
    }
    r.have_durations = true;
    if (options_.trace_slices && trace::enabled()) trace_last_replay(ticks);
  }
}

void Recording::trace_last_replay(const std::vector<uint64_t>& ticks) {
  NativeRecording& r = *native_;
  if (!r.clock) r.clock.emplace(*context_);
  const trace::GpuTrack track = trace::gpu_track("GPU: " + context_->caps().device_name);
  if (!track.uuid) return;
  // Commands without a barrier between them may overlap on the GPU, and so may other recordings'
  // replays; the track shows them one after another (a slice starts no earlier than the previous
  // one on the track ended), which keeps every slice whole and the order true.
  static std::mutex mutex;
  static std::map<uint64_t, uint64_t> track_end_ns;
  std::lock_guard lock(mutex);
  uint64_t& previous_end = track_end_ns[track.uuid];
  for (size_t i = 0; i < labels_.size(); ++i) {
    const uint64_t begin = std::max(r.clock->to_trace_ns(ticks[2 * i]), previous_end);
    const uint64_t end = begin + r.durations_ns[i];
    trace::gpu_slice(track, names_[i], labels_[i], begin, end);
    previous_end = end;
  }
}

uint32_t Recording::query_count() const { return native_->queries ? uint32_t(2 * labels_.size()) : 0; }

void Recording::run(uint32_t times) {
  submit(times);
  wait();
}

std::vector<uint64_t> Recording::dispatch_durations_ns() const {
  if (!options_.timestamps) {
    throw Error("gpu::Recording::dispatch_durations_ns: the recording was made without timestamps; "
                "create it with RecordingOptions{.timestamps = true}");
  }
  if (!context_->caps().supports_timestamps) return {};
  if (!native_->have_durations) {
    throw Error("gpu::Recording::dispatch_durations_ns: no replay has completed yet; call run() first");
  }
  return native_->durations_ns;
}

}  // namespace meganeura::gpu
