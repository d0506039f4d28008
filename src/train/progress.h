// Training progress on a stream: a bar redrawn up to ten times a second on a terminal, otherwise a
// plain line every log_interval steps and at the end of each epoch.
//
//   ProgressPrinter progress(Progress::automatic, std::cout, /*epochs=*/5, /*steps_per_epoch=*/600, 50);
//   progress.step(info, /*steps_done_in_epoch=*/120);  // "epoch 1/5 [####......] 120/600 loss 0.52 ..."
//   progress.epoch(epoch_info);                          // ends the bar's line, prints the summary
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>

#include "meganeura/train.h"

namespace meganeura::train {

class ProgressPrinter {
 public:
  ProgressPrinter(Progress mode, std::ostream& out, int64_t epochs, int64_t steps_per_epoch, int64_t log_interval);

  void step(const StepInfo& info, int64_t steps_done_in_epoch);
  void epoch(const EpochInfo& info);

 private:
  Progress mode_;
  std::ostream& out_;
  int64_t epochs_;
  int64_t steps_per_epoch_;
  int64_t log_interval_;
  bool bar_open_ = false;
  std::chrono::steady_clock::time_point last_draw_ = {};
};

// "1:05" or "1:02:03".
std::string format_duration(double seconds);

}  // namespace meganeura::train
