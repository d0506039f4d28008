#include "runtime/kernel_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "meganeura/error.h"

namespace meganeura::runtime {

bool profile_requested() {
  static const bool requested = [] {
    const char* value = std::getenv("MEGANEURA_PROFILE");
    return value && *value && std::strcmp(value, "0") != 0;
  }();
  return requested;
}

void KernelProfile::add(const std::vector<std::string>& names, const std::vector<std::string>& labels,
                        const std::vector<uint64_t>& durations_ns, uint64_t replays) {
  if (names.size() != labels.size() || labels.size() != durations_ns.size()) {
    throw Error("KernelProfile::add: " + std::to_string(names.size()) + " names, " + std::to_string(labels.size()) +
                " labels and " + std::to_string(durations_ns.size()) + " durations; give one of each per command");
  }
  if (replays == 0 || durations_ns.empty()) return;
  for (size_t i = 0; i < labels.size(); ++i) {
    // Commands are told apart by label: the same shader runs for many different layers.
    Row& row = by_label_[names[i] + '\n' + labels[i]];
    row.name = names[i];
    row.label = labels[i];
    row.calls += replays;
    row.total_ns += durations_ns[i] * replays;
    total_ns_ += durations_ns[i] * replays;
  }
  replays_ += replays;
}

std::vector<KernelProfile::Row> KernelProfile::rows() const {
  std::vector<Row> rows;
  for (const auto& [key, row] : by_label_) rows.push_back(row);
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.total_ns > b.total_ns; });
  return rows;
}

std::string KernelProfile::table(const std::string& replay_kind) const {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, " (%.3f ms in all, %.3f ms each)\n", total_ns_ / 1e6,
                replays_ ? total_ns_ / 1e6 / static_cast<double>(replays_) : 0.0);
  out << "GPU time by kernel over " << replays_ << ' ' << replay_kind << line;
  std::snprintf(line, sizeof line, "%7s %12s %10s %8s  %-12s %s\n", "share", "total ms", "mean us", "calls", "kernel",
                "nodes");
  out << line;
  for (const Row& row : rows()) {
    const double share = total_ns_ ? 100.0 * static_cast<double>(row.total_ns) / static_cast<double>(total_ns_) : 0.0;
    std::snprintf(line, sizeof line, "%6.1f%% %12.3f %10.1f %8llu  %-12s ", share, row.total_ns / 1e6,
                  row.total_ns / 1e3 / static_cast<double>(row.calls), static_cast<unsigned long long>(row.calls),
                  row.name.c_str());
    out << line << row.label << '\n';
  }
  return out.str();
}

}  // namespace meganeura::runtime
