// MEGANEURA_TRACE in a real process: the test program runs itself as a child with only
// TraceChild.* selected, and the parent decodes what the child left behind after exiting.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <thread>

#include "support/temp_dir.h"
#include "meganeura/trace.h"
#include "trace_decoder.h"

namespace trace = meganeura::trace;

namespace {

// Runs this test program's TraceChild test in `dir` with `environment` prepended; returns its status.
int run_child(const std::filesystem::path& dir, const std::string& environment) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string command = "cd '" + dir.string() + "' && env -u MEGANEURA_TRACE MEGANEURA_TRACE_CHILD=1 " +
                              environment + " '" + self.string() +
                              "' --gtest_filter=TraceChild.RecordsAndExits > child.log 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// The child's body: does nothing unless started by the tests below.
TEST(TraceChild, RecordsAndExits) {
  if (!std::getenv("MEGANEURA_TRACE_CHILD")) GTEST_SKIP() << "runs only as the child of TraceAtExit tests";
  const bool expect_trace = std::getenv("MEGANEURA_TRACE") != nullptr;
  ASSERT_EQ(trace::enabled(), expect_trace);
  trace::Scope whole("whole run");
  const trace::GpuTrack gpu = trace::gpu_track("GPU: child");
  ASSERT_EQ(gpu.uuid != 0, expect_trace);
  for (int step = 0; step < 4; ++step) {
    trace::Scope scope("step", "step " + std::to_string(step));
    const uint64_t begin = trace::now_ns();
    std::thread([] { trace::Scope load("load batch"); }).join();
    trace::gpu_slice(gpu, "matmul", "fc1", begin, trace::now_ns());
  }
  // exit() skips the destructors of `whole`: the exit handler must close its slice.
  std::exit(0);
}

TEST(TraceAtExit, FileIsCompleteAfterNormalExit) {
  TempDir dir;
  ASSERT_EQ(run_child(dir.path(), "MEGANEURA_TRACE=run.pftrace"), 0) << "see " << (dir / "child.log");
  const DecodedTrace decoded = decode_trace(dir / "run.pftrace");
  EXPECT_TRUE(decoded.unknown_fields.empty());
  const auto slices = rebuild_slices(decoded);
  int steps = 0, loads = 0, kernels = 0;
  const Slice* whole = nullptr;
  for (const auto& slice : slices) {
    if (slice.name == "whole run") whole = &slice;
    if (slice.name == "step") {
      EXPECT_EQ(slice.depth, 1);
      EXPECT_EQ(slice.label, "step " + std::to_string(steps));
      ++steps;
    }
    if (slice.name == "load batch") {
      ++loads;
      EXPECT_EQ(slice.depth, 0);  // on its own thread's track
    }
    if (slice.name == "matmul") ++kernels;
  }
  EXPECT_EQ(steps, 4);
  EXPECT_EQ(loads, 4);
  EXPECT_EQ(kernels, 4);
  ASSERT_NE(whole, nullptr);
  for (const auto& slice : slices) EXPECT_LE(slice.end, whole->end) << slice.name;
}

TEST(TraceAtExit, UnsetVariableWritesNothing) {
  TempDir dir;
  ASSERT_EQ(run_child(dir.path(), ""), 0) << "see " << (dir / "child.log");
  std::filesystem::remove(dir / "child.log");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}
