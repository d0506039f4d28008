// runtime::KernelProfile — GPU time per kernel summed over replays, for MEGANEURA_PROFILE=1.
//
//   runtime::KernelProfile profile;
//   profile.add(recording.names(), recording.labels(), recording.dispatch_durations_ns(), 1);
//   std::fputs(profile.table("training steps").c_str(), stderr);  // kernels by total time, share of the step
//
// A session records timestamps when MEGANEURA_PROFILE=1 (or a trace is written), adds every
// replay here (one profile per kind of replay: training steps, forward passes, ...) and prints the
// tables when it is destroyed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace meganeura::runtime {

// MEGANEURA_PROFILE set to anything but "" or "0"; read once.
bool profile_requested();

class KernelProfile {
 public:
  // One completed replay (repeated `replays` times with the same durations): per command its kernel
  // name, its label (the graph nodes it fuses) and its duration. The three must be the same length.
  void add(const std::vector<std::string>& names, const std::vector<std::string>& labels,
           const std::vector<uint64_t>& durations_ns, uint64_t replays);

  struct Row {
    std::string name;
    std::string label;
    uint64_t calls = 0;
    uint64_t total_ns = 0;
  };
  // Rows by total time, longest first (ties by label).
  std::vector<Row> rows() const;
  uint64_t replays() const { return replays_; }
  uint64_t total_ns() const { return total_ns_; }
  // A text table: kernel, calls, total ms, mean µs, share of the GPU time of all replays.
  // `replay_kind` names what a replay is ("training steps").
  std::string table(const std::string& replay_kind = "replays") const;

 private:
  std::map<std::string, Row> by_label_;
  uint64_t replays_ = 0;
  uint64_t total_ns_ = 0;
};

}  // namespace meganeura::runtime
