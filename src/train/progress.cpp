// Progress output: what a person watching a run wants (where it is, the loss, speed, time left).
#include "train/progress.h"

#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <sstream>

namespace meganeura::train {

std::string format_duration(double seconds) {
  const int64_t total = seconds > 0 ? static_cast<int64_t>(seconds + 0.5) : 0;
  std::ostringstream text;
  text << std::setfill('0');
  if (total >= 3600) text << total / 3600 << ':' << std::setw(2) << total / 60 % 60;
  else text << total / 60;
  text << ':' << std::setw(2) << total % 60;
  return text.str();
}

ProgressPrinter::ProgressPrinter(Progress mode, std::ostream& out, int64_t epochs, int64_t steps_per_epoch,
                                 int64_t log_interval)
    : mode_(mode), out_(out), epochs_(epochs), steps_per_epoch_(steps_per_epoch), log_interval_(log_interval) {
  if (mode_ == Progress::automatic) {
    // A redrawn bar only makes sense where a person watches a terminal; logs get whole lines.
    mode_ = (&out_ == &std::cout && isatty(STDOUT_FILENO)) ? Progress::bar : Progress::lines;
  }
}

void ProgressPrinter::step(const StepInfo& info, int64_t steps_done_in_epoch) {
  if (mode_ == Progress::off) return;
  const bool last_of_epoch = steps_done_in_epoch >= steps_per_epoch_;
  if (mode_ == Progress::bar) {
    // Redraw often enough to look alive, rarely enough that drawing costs nothing.
    const auto now = std::chrono::steady_clock::now();
    if (!last_of_epoch && steps_done_in_epoch != 1 && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
  } else if (info.step % log_interval_ != 0 && !last_of_epoch) {
    return;
  }
  std::ostringstream line;
  line << "epoch " << info.epoch + 1 << '/' << epochs_ << ' ';
  if (mode_ == Progress::bar) {
    const int width = 24;
    const int filled = steps_per_epoch_ > 0 ? static_cast<int>(width * steps_done_in_epoch / steps_per_epoch_) : 0;
    line << '[' << std::string(static_cast<size_t>(filled), '#') << std::string(static_cast<size_t>(width - filled), '.')
         << "] ";
  } else {
    line << "step ";
  }
  line << steps_done_in_epoch << '/' << steps_per_epoch_ << std::fixed << std::setprecision(4) << " loss "
       << info.loss << std::setprecision(0) << "  " << info.samples_per_second << " samples/s  ETA "
       << format_duration(info.eta_seconds);
  if (mode_ == Progress::bar) {
    out_ << '\r' << line.str() << "\033[K" << std::flush;  // erase what a longer previous line left
    bar_open_ = true;
  } else {
    out_ << line.str() << '\n' << std::flush;
  }
}

void ProgressPrinter::epoch(const EpochInfo& info) {
  if (mode_ == Progress::off) return;
  if (bar_open_) out_ << '\n';
  bar_open_ = false;
  std::ostringstream line;
  line << "epoch " << info.epoch + 1 << '/' << epochs_ << " done: mean loss " << std::fixed << std::setprecision(4)
       << info.mean_loss << ", " << std::setprecision(0) << info.samples_per_second << " samples/s, "
       << format_duration(info.seconds);
  out_ << line.str() << '\n' << std::flush;
}

}  // namespace meganeura::train
