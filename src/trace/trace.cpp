// The trace recorder: one process-wide writer that appends Perfetto packets to the trace file under
// a mutex. All packets share one sequence; each thread gets its own track (so nested Scopes form a
// call stack per thread) and each GPU track is a named child of the process track. Timestamps are
// CLOCK_MONOTONIC, declared per packet and tied to the other clocks by a ClockSnapshot, so the UI
// places GPU slices calibrated to that clock beside the CPU slices.
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "meganeura/error.h"
#include "meganeura/trace.h"
#include "trace/perfetto_packets.h"

namespace meganeura::trace {

namespace detail {
std::atomic<int> state{kUnknown};
}  // namespace detail

namespace {

constexpr uint32_t kSequenceId = 1;

uint64_t read_clock(clockid_t clock) {
  timespec time{};
  clock_gettime(clock, &time);
  return static_cast<uint64_t>(time.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(time.tv_nsec);
}

std::string current_thread_name() {
  char name[64] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return {};
  return name;
}

class Recorder;
Recorder& recorder();

class Recorder {
 public:
  bool start_from_environment() {
    std::lock_guard lock(mutex_);
    const int state = detail::state.load();
    if (state != detail::kUnknown) return state == detail::kOn;
    const char* path = std::getenv("MEGANEURA_TRACE");
    if (path == nullptr || *path == '\0') {
      detail::state.store(detail::kOff);
      return false;
    }
    try {
      start_locked(path);
    } catch (...) {
      detail::state.store(detail::kOff);  // report once; the program may go on without a trace
      throw;
    }
    return true;
  }

  void start(const std::string& path) {
    std::lock_guard lock(mutex_);
    detail::state.store(detail::kOff);  // stays off if the new file cannot be created
    if (file_) finish_locked();
    start_locked(path);
  }

  void stop() {
    std::lock_guard lock(mutex_);
    detail::state.store(detail::kOff);
    if (file_) finish_locked();
  }

  // At exit nobody can catch an exception; a failed write is reported on stderr instead.
  void stop_at_exit() noexcept {
    try {
      stop();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "meganeura: %s\n", e.what());
    }
  }

  void flush() {
    std::lock_guard lock(mutex_);
    if (!file_) return;
    if (std::fflush(file_) != 0) write_failed_ = errno;
    check_writes_locked();
  }

  void begin_slice(std::string_view name, std::string_view label, uint64_t& generation) {
    std::lock_guard lock(mutex_);
    if (!file_) return;
    ThreadTrack& track = thread_track_locked();
    ++track.open_slices;
    generation = generation_;
    write_event_locked(now_ns(), {.type = EventType::slice_begin, .track_uuid = track.uuid, .name = name,
                                  .category = "cpu", .annotations = label_annotation(label)});
  }

  void end_slice(uint64_t generation) {
    std::lock_guard lock(mutex_);
    if (!file_ || generation != generation_) return;  // that trace has ended
    ThreadTrack& track = thread_track_locked();
    if (track.open_slices == 0) return;
    --track.open_slices;
    write_event_locked(now_ns(), {.type = EventType::slice_end, .track_uuid = track.uuid});
  }

  void instant(std::string_view name, std::string_view label) {
    std::lock_guard lock(mutex_);
    if (!file_) return;
    const uint64_t uuid = thread_track_locked().uuid;
    write_event_locked(now_ns(), {.type = EventType::instant, .track_uuid = uuid, .name = name, .category = "cpu",
                                  .annotations = label_annotation(label)});
  }

  GpuTrack gpu_track(std::string_view name) {
    std::lock_guard lock(mutex_);
    if (!file_) return {};
    auto [entry, added] = gpu_tracks_by_name_.try_emplace(std::string(name), 0);
    if (added) {
      entry->second = next_uuid_++;
      gpu_track_names_[entry->second] = entry->first;
    }
    describe_gpu_track_locked(entry->second);
    return {entry->second};
  }

  void gpu_slice(const GpuTrack& track, std::string_view name, std::string_view label, uint64_t begin_ns,
                 uint64_t end_ns) {
    std::lock_guard lock(mutex_);
    if (!file_) return;
    if (!gpu_track_names_.count(track.uuid)) {
      throw Error("trace::gpu_slice(\"" + std::string(name) + "\"): unknown GPU track " + std::to_string(track.uuid) +
                  "; get tracks from trace::gpu_track()");
    }
    describe_gpu_track_locked(track.uuid);  // a track made during an earlier trace
    write_event_locked(begin_ns, {.type = EventType::slice_begin, .track_uuid = track.uuid, .name = name,
                                  .category = "gpu", .annotations = label_annotation(label)});
    write_event_locked(end_ns, {.type = EventType::slice_end, .track_uuid = track.uuid});
  }

 private:
  struct ThreadTrack {
    uint64_t uuid = 0;
    int64_t open_slices = 0;
  };

  static std::vector<std::pair<std::string_view, std::string_view>> label_annotation(std::string_view label) {
    if (label.empty()) return {};
    return {{"label", label}};
  }

  void start_locked(const std::string& path) {
    FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) {
      throw Error("trace: cannot create the trace file '" + path + "' (" + std::strerror(errno) +
                  "); set MEGANEURA_TRACE to a writable path, or unset it to run without tracing");
    }
    std::setvbuf(file, nullptr, _IOFBF, 1 << 20);
    file_ = file;
    path_ = path;
    write_failed_ = 0;
    ++generation_;
    if (next_uuid_ == 0) next_uuid_ = (static_cast<uint64_t>(getpid()) << 32) ^ (read_clock(CLOCK_MONOTONIC) << 8) ^ 1;
    threads_.clear();
    described_gpu_tracks_.clear();
    static std::once_flag at_exit;
    std::call_once(at_exit, [] { std::atexit([] { recorder().stop_at_exit(); }); });

    // The first packet of the sequence: clears incremental state and relates the clocks.
    write_clock_snapshot_locked(true);
    process_uuid_ = next_uuid_++;
    write_packet_locked(track_descriptor_packet(
        header(read_clock(CLOCK_MONOTONIC)),
        {.uuid = process_uuid_, .process = ProcessInfo{static_cast<int32_t>(getpid()), program_invocation_short_name}}));
    detail::state.store(detail::kOn);
  }

  void finish_locked() {
    const uint64_t now = now_ns();
    for (auto& [tid, track] : threads_) {
      for (; track.open_slices > 0; --track.open_slices) {
        write_event_locked(now, {.type = EventType::slice_end, .track_uuid = track.uuid});
      }
    }
    write_clock_snapshot_locked(false);
    FILE* file = file_;
    file_ = nullptr;
    if (std::fclose(file) != 0 && !write_failed_) write_failed_ = errno;
    check_writes_locked();
  }

  void check_writes_locked() {
    if (write_failed_) {
      const int error = write_failed_;
      write_failed_ = 0;
      throw Error("trace: writing the trace file '" + path_ + "' failed (" + std::strerror(error) +
                  "); the trace is incomplete, check free disk space");
    }
  }

  static PacketHeader header(uint64_t timestamp_ns, uint32_t flags = 0) {
    return {.timestamp_ns = timestamp_ns, .clock_id = kClockMonotonic, .sequence_id = kSequenceId,
            .sequence_flags = flags};
  }

  void write_clock_snapshot_locked(bool first) {
    const uint64_t boottime = read_clock(CLOCK_BOOTTIME);
    const uint64_t monotonic = read_clock(CLOCK_MONOTONIC);
    const uint64_t realtime = read_clock(CLOCK_REALTIME);
    // The snapshot's own timestamp is in the default trace clock, BOOTTIME.
    PacketHeader snapshot{.timestamp_ns = boottime, .sequence_id = kSequenceId};
    if (first) {
      snapshot.sequence_flags = kSeqIncrementalStateCleared;
      snapshot.first_on_sequence = true;
    }
    // MONOTONIC as the trace's time axis: the UI shows now_ns() values unconverted.
    write_packet_locked(clock_snapshot_packet(
        snapshot, {{kClockBoottime, boottime}, {kClockMonotonic, monotonic}, {kClockRealtime, realtime}},
        kClockMonotonic));
  }

  ThreadTrack& thread_track_locked() {
    const int32_t tid = gettid();
    auto [entry, added] = threads_.try_emplace(tid);
    if (added) {
      entry->second.uuid = next_uuid_++;
      write_packet_locked(track_descriptor_packet(
          header(now_ns()), {.uuid = entry->second.uuid,
                             .parent_uuid = process_uuid_,
                             .thread = ThreadInfo{static_cast<int32_t>(getpid()), tid, current_thread_name()}}));
    }
    return entry->second;
  }

  void describe_gpu_track_locked(uint64_t uuid) {
    if (!described_gpu_tracks_.insert(uuid).second) return;
    write_packet_locked(track_descriptor_packet(
        header(now_ns()), {.uuid = uuid, .parent_uuid = process_uuid_, .name = gpu_track_names_.at(uuid)}));
  }

  void write_event_locked(uint64_t timestamp_ns, const TrackEvent& event) {
    write_packet_locked(track_event_packet(header(timestamp_ns, kSeqNeedsIncrementalState), event));
  }

  void write_packet_locked(const std::string& packet) {
    const std::string entry = trace_entry(packet);
    if (std::fwrite(entry.data(), 1, entry.size(), file_) != entry.size() && !write_failed_) write_failed_ = errno;
  }

  std::mutex mutex_;
  FILE* file_ = nullptr;
  std::string path_;
  int write_failed_ = 0;     // errno of the first failed write of this trace
  uint64_t generation_ = 0;  // counts traces started in this process
  uint64_t next_uuid_ = 0;
  uint64_t process_uuid_ = 0;
  std::unordered_map<int32_t, ThreadTrack> threads_;  // by thread id, in this trace
  std::unordered_map<std::string, uint64_t> gpu_tracks_by_name_;
  std::unordered_map<uint64_t, std::string> gpu_track_names_;
  std::unordered_set<uint64_t> described_gpu_tracks_;  // in this trace
};

// Never destroyed: static destructors that run after the exit handler may still call into it.
Recorder& recorder() {
  static Recorder* instance = new Recorder;
  return *instance;
}

}  // namespace

namespace detail {

bool start_from_environment() { return recorder().start_from_environment(); }

void begin_slice(std::string_view name, std::string_view label, uint64_t& generation) {
  recorder().begin_slice(name, label, generation);
}

void end_slice(uint64_t generation) { recorder().end_slice(generation); }

}  // namespace detail

uint64_t now_ns() { return read_clock(CLOCK_MONOTONIC); }

void start(const std::string& path) { recorder().start(path); }
void stop() { recorder().stop(); }
void flush() { recorder().flush(); }

void instant(std::string_view name, std::string_view label) {
  if (enabled()) recorder().instant(name, label);
}

GpuTrack gpu_track(std::string_view name) {
  if (!enabled()) return {};
  return recorder().gpu_track(name);
}

void gpu_slice(const GpuTrack& track, std::string_view name, std::string_view label, uint64_t begin_ns,
               uint64_t end_ns) {
  if (track.uuid == 0 || !enabled()) return;
  if (end_ns < begin_ns) {
    throw Error("trace::gpu_slice(\"" + std::string(name) + "\"): ends at " + std::to_string(end_ns) +
                " ns, before it begins at " + std::to_string(begin_ns) +
                " ns; pass timestamps converted to trace::now_ns()'s clock, in order");
  }
  recorder().gpu_slice(track, name, label, begin_ns, end_ns);
}

}  // namespace meganeura::trace
