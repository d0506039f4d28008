// GPU timestamps land on the trace clock: a replay's slices lie between the CPU readings taken
// around it, and copies and fills get slices of their own, named after what they are.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <span>
#include <vector>

#include "support/temp_dir.h"
#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/gpu_clock.h"
#include "gpu/recording.h"
#include "gpu/transfer.h"
#include "meganeura/trace.h"
#include "trace/trace_decoder.h"

namespace meganeura::gpu {
namespace {

TEST(GpuClock, ReplaySlicesLieBetweenTheCpuReadingsAroundThem) {
  auto context = Context::shared();
  if (!context->caps().supports_timestamps) GTEST_SKIP() << "the device has no timestamp queries";
  const GpuClock clock(*context);
  EXPECT_LT(clock.uncertainty_ns(), 50'000'000u) << "the clock offset was measured with a huge round trip";

  std::mt19937 rng(23);
  std::vector<uint32_t> values(4096);
  for (uint32_t& v : values) v = rng() | 1;
  Buffer source(context, values.size() * 4, MemoryKind::DeviceLocal, "source");
  Buffer destination(context, values.size() * 4, MemoryKind::DeviceLocal, "destination");
  upload(source, 0, std::as_bytes(std::span(values)));

  TempDir dir;
  trace::start((dir / "clock.pftrace").string());
  Recording recording(context, {.timestamps = true});
  recording.fill({&destination, 0, BufferRange::whole}, 7, "clear destination");
  recording.barrier();
  recording.copy({&source, 0, BufferRange::whole}, {&destination, 0, BufferRange::whole}, "source to destination");
  recording.finish();
  const uint64_t before = trace::now_ns();
  recording.run(1);
  const uint64_t after = trace::now_ns();
  trace::stop();

  std::vector<uint32_t> copied(values.size());
  download(destination, 0, std::as_writable_bytes(std::span(copied)));
  EXPECT_EQ(copied, values);

  std::vector<Slice> gpu;
  for (const Slice& slice : rebuild_slices(decode_trace(dir / "clock.pftrace"))) {
    if (std::find(slice.categories.begin(), slice.categories.end(), "gpu") != slice.categories.end()) gpu.push_back(slice);
  }
  ASSERT_EQ(gpu.size(), 2u);
  EXPECT_EQ(gpu[0].name, "fill");
  EXPECT_EQ(gpu[0].label, "clear destination");
  EXPECT_EQ(gpu[1].name, "copy");
  EXPECT_EQ(gpu[1].label, "source to destination");
  const uint64_t slack = clock.uncertainty_ns() + 1'000'000;  // the recording measured its own offset
  for (const Slice& slice : gpu) {
    EXPECT_GE(slice.begin + slack, before) << slice.name;
    EXPECT_LE(slice.end, after + slack) << slice.name;
    EXPECT_LE(slice.begin, slice.end) << slice.name;
  }
  EXPECT_GE(gpu[1].begin, gpu[0].end);
}

}  // namespace
}  // namespace meganeura::gpu
