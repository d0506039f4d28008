// The trace writer, in process: traces are started and stopped explicitly, decoded with protoc and
// checked slice by slice.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "support/temp_dir.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"
#include "trace_decoder.h"

namespace trace = meganeura::trace;

namespace {

constexpr uint32_t kMonotonic = 3;

const Slice* find_slice(const std::vector<Slice>& slices, const std::string& name) {
  for (const auto& slice : slices) {
    if (slice.name == name) return &slice;
  }
  ADD_FAILURE() << "no slice named " << name;
  return nullptr;
}

const DecodedPacket* find_process_track(const DecodedTrace& decoded) {
  for (const auto& packet : decoded.packets) {
    if (packet.kind == "track_descriptor" && packet.has_process) return &packet;
  }
  ADD_FAILURE() << "no process track";
  return nullptr;
}

}  // namespace

TEST(TraceWriter, CpuScopesNestWithNamesAndLabels) {
  TempDir dir;
  const uint64_t before = trace::now_ns();
  trace::start((dir / "t.pftrace").string());
  EXPECT_TRUE(trace::enabled());
  {
    trace::Scope outer("optimize");
    { trace::Scope inner("saturate", "iteration 1"); }
    { trace::Scope inner("extract"); }
    trace::instant("rules loaded", "42 rules");
  }
  trace::stop();
  const uint64_t after = trace::now_ns();
  EXPECT_FALSE(trace::enabled());

  const DecodedTrace decoded = decode_trace(dir / "t.pftrace");
  EXPECT_TRUE(decoded.unknown_fields.empty()) << decoded.unknown_fields.front();
  ASSERT_FALSE(decoded.packets.empty());

  // The first packet opens the sequence and relates the clocks.
  const DecodedPacket& first = decoded.packets.front();
  EXPECT_EQ(first.kind, "clock_snapshot");
  EXPECT_TRUE(first.first_on_sequence);
  EXPECT_EQ(first.sequence_flags, 1u);  // SEQ_INCREMENTAL_STATE_CLEARED
  ASSERT_TRUE(first.clocks.count(kMonotonic));
  EXPECT_GE(first.clocks.at(kMonotonic), before);
  EXPECT_LE(first.clocks.at(kMonotonic), after);
  EXPECT_TRUE(first.clocks.count(6));  // BOOTTIME, Perfetto's default trace clock
  EXPECT_EQ(first.primary_clock, "BUILTIN_CLOCK_MONOTONIC");

  const DecodedPacket* process = find_process_track(decoded);
  ASSERT_NE(process, nullptr);
  EXPECT_EQ(process->pid, getpid());
  const DecodedPacket* thread = nullptr;
  for (const auto& packet : decoded.packets) {
    EXPECT_EQ(packet.sequence_id, 1u);
    if (packet.kind == "track_descriptor" && packet.has_thread) thread = &packet;
    if (packet.kind == "track_event") {
      EXPECT_EQ(packet.clock_id, kMonotonic);
      EXPECT_EQ(packet.sequence_flags, 2u);  // SEQ_NEEDS_INCREMENTAL_STATE
    }
  }
  ASSERT_NE(thread, nullptr);
  EXPECT_EQ(thread->tid, gettid());
  EXPECT_EQ(thread->pid, getpid());
  EXPECT_EQ(thread->parent_uuid, process->uuid);

  const auto slices = rebuild_slices(decoded);
  ASSERT_EQ(slices.size(), 3u);
  const Slice* optimize = find_slice(slices, "optimize");
  const Slice* saturate = find_slice(slices, "saturate");
  const Slice* extract = find_slice(slices, "extract");
  ASSERT_TRUE(optimize && saturate && extract);
  EXPECT_EQ(optimize->track_uuid, thread->uuid);
  EXPECT_EQ(optimize->depth, 0);
  EXPECT_EQ(saturate->depth, 1);
  EXPECT_EQ(extract->depth, 1);
  EXPECT_EQ(&slices[saturate->parent], optimize);
  EXPECT_EQ(&slices[extract->parent], optimize);
  EXPECT_EQ(saturate->label, "iteration 1");
  EXPECT_EQ(optimize->categories, std::vector<std::string>{"cpu"});
  EXPECT_LE(optimize->begin, saturate->begin);
  EXPECT_LE(saturate->end, extract->begin);
  EXPECT_LE(extract->end, optimize->end);
  EXPECT_GE(optimize->begin, before);
  EXPECT_LE(optimize->end, after);

  const auto instant = std::find_if(decoded.packets.begin(), decoded.packets.end(),
                                    [](const DecodedPacket& p) { return p.type == "TYPE_INSTANT"; });
  ASSERT_NE(instant, decoded.packets.end());
  EXPECT_EQ(instant->name, "rules loaded");
  EXPECT_EQ(instant->annotations.at("label"), "42 rules");
  EXPECT_GE(instant->timestamp, saturate->end);
}

TEST(TraceWriter, EventTimesAreMonotonicPerTrack) {
  TempDir dir;
  trace::start((dir / "t.pftrace").string());
  for (int i = 0; i < 20; ++i) {
    trace::Scope step("step");
    trace::Scope forward("forward");
  }
  trace::stop();
  const DecodedTrace decoded = decode_trace(dir / "t.pftrace");
  std::map<uint64_t, uint64_t> last_time;
  int events = 0;
  for (const auto& packet : decoded.packets) {
    if (packet.kind != "track_event") continue;
    ++events;
    EXPECT_GE(packet.timestamp, last_time[packet.track_uuid]);
    last_time[packet.track_uuid] = packet.timestamp;
  }
  EXPECT_EQ(events, 80);
  const auto slices = rebuild_slices(decoded);
  EXPECT_EQ(std::count_if(slices.begin(), slices.end(), [](const Slice& s) { return s.name == "forward" && s.depth == 1; }), 20);
}

TEST(TraceWriter, GpuSlicesKeepTheirTimesNamesAndLabels) {
  TempDir dir;
  trace::start((dir / "t.pftrace").string());
  const trace::GpuTrack gpu = trace::gpu_track("GPU: test device");
  EXPECT_NE(gpu.uuid, 0u);
  EXPECT_EQ(trace::gpu_track("GPU: test device").uuid, gpu.uuid);
  EXPECT_NE(trace::gpu_track("GPU: other").uuid, gpu.uuid);

  std::mt19937_64 rng(7);
  struct Expected {
    std::string name, label;
    uint64_t begin, end;
  };
  std::vector<Expected> expected;
  uint64_t time = trace::now_ns();
  for (int i = 0; i < 17; ++i) {
    time += 1 + rng() % 5000;
    const uint64_t begin = time;
    time += rng() % 100000;
    expected.push_back({"kernel_" + std::to_string(rng() % 1000), "matmul+add (fc" + std::to_string(i) + ")", begin, time});
  }
  for (const auto& e : expected) trace::gpu_slice(gpu, e.name, e.label, e.begin, e.end);
  trace::stop();

  const DecodedTrace decoded = decode_trace(dir / "t.pftrace");
  EXPECT_TRUE(decoded.unknown_fields.empty());
  const DecodedPacket* process = find_process_track(decoded);
  ASSERT_NE(process, nullptr);
  int gpu_descriptors = 0;
  for (const auto& packet : decoded.packets) {
    if (packet.kind == "track_descriptor" && packet.uuid == gpu.uuid) {
      ++gpu_descriptors;
      EXPECT_EQ(packet.track_name, "GPU: test device");
      EXPECT_EQ(packet.parent_uuid, process->uuid);
    }
  }
  EXPECT_EQ(gpu_descriptors, 1);
  std::vector<Slice> on_gpu;
  for (const auto& slice : rebuild_slices(decoded)) {
    if (slice.track_uuid == gpu.uuid) on_gpu.push_back(slice);
  }
  ASSERT_EQ(on_gpu.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(on_gpu[i].name, expected[i].name);
    EXPECT_EQ(on_gpu[i].label, expected[i].label);
    EXPECT_EQ(on_gpu[i].begin, expected[i].begin);
    EXPECT_EQ(on_gpu[i].end, expected[i].end);
    EXPECT_EQ(on_gpu[i].depth, 0);
    EXPECT_EQ(on_gpu[i].categories, std::vector<std::string>{"gpu"});
  }
}

TEST(TraceWriter, EachThreadGetsItsOwnTrack) {
  TempDir dir;
  trace::start((dir / "t.pftrace").string());
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 5; ++i) {
        trace::Scope outer("worker " + std::to_string(t));
        trace::Scope inner("task");
      }
    });
  }
  for (auto& thread : threads) thread.join();
  trace::stop();

  const DecodedTrace decoded = decode_trace(dir / "t.pftrace");
  std::set<int64_t> tids;
  std::set<uint64_t> thread_tracks;
  for (const auto& packet : decoded.packets) {
    if (packet.kind == "track_descriptor" && packet.has_thread) {
      tids.insert(packet.tid);
      thread_tracks.insert(packet.uuid);
    }
  }
  EXPECT_EQ(tids.size(), 3u);
  EXPECT_EQ(thread_tracks.size(), 3u);
  const auto slices = rebuild_slices(decoded);
  ASSERT_EQ(slices.size(), 30u);
  for (const auto& slice : slices) {
    EXPECT_TRUE(thread_tracks.count(slice.track_uuid));
    if (slice.name == "task") {
      ASSERT_GE(slice.parent, 0);
      EXPECT_EQ(slices[slice.parent].track_uuid, slice.track_uuid);
      EXPECT_EQ(slices[slice.parent].name.rfind("worker ", 0), 0u);
    } else {
      EXPECT_EQ(slice.depth, 0);
    }
  }
}

TEST(TraceWriter, StopClosesOpenSlicesAndLaterEndsAreDropped) {
  TempDir dir;
  trace::start((dir / "first.pftrace").string());
  auto open = std::make_unique<trace::Scope>("still running");
  trace::stop();
  trace::start((dir / "second.pftrace").string());
  open.reset();  // began in the first trace: must not end a slice of the second
  { trace::Scope scope("second only"); }
  trace::stop();

  const auto first = rebuild_slices(decode_trace(dir / "first.pftrace"));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].name, "still running");
  EXPECT_GE(first[0].end, first[0].begin);
  const auto second = rebuild_slices(decode_trace(dir / "second.pftrace"));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].name, "second only");
}

TEST(TraceWriter, GpuTrackFromAnEarlierTraceIsDescribedAgain) {
  TempDir dir;
  trace::start((dir / "a.pftrace").string());
  const trace::GpuTrack gpu = trace::gpu_track("GPU: reused");
  trace::stop();
  trace::start((dir / "b.pftrace").string());
  const uint64_t t = trace::now_ns();
  trace::gpu_slice(gpu, "kernel", "", t, t + 1000);
  trace::stop();
  const DecodedTrace decoded = decode_trace(dir / "b.pftrace");
  const auto described = std::count_if(decoded.packets.begin(), decoded.packets.end(), [&](const DecodedPacket& p) {
    return p.kind == "track_descriptor" && p.uuid == gpu.uuid && p.track_name == "GPU: reused";
  });
  EXPECT_EQ(described, 1);
  ASSERT_EQ(rebuild_slices(decoded).size(), 1u);
}

TEST(TraceWriter, FlushLeavesAValidFileWhileTracing) {
  TempDir dir;
  trace::start((dir / "t.pftrace").string());
  {
    trace::Scope scope("before flush");
  }
  trace::flush();
  const DecodedTrace mid = decode_trace(dir / "t.pftrace");
  EXPECT_EQ(rebuild_slices(mid).size(), 1u);
  { trace::Scope scope("after flush"); }
  trace::stop();
  EXPECT_EQ(rebuild_slices(decode_trace(dir / "t.pftrace")).size(), 2u);
}

TEST(TraceWriter, ReversedGpuSliceIsAnError) {
  TempDir dir;
  trace::start((dir / "t.pftrace").string());
  const trace::GpuTrack gpu = trace::gpu_track("GPU");
  EXPECT_THROW(trace::gpu_slice(gpu, "kernel", "", 2000, 1000), meganeura::Error);
  trace::stop();
}

TEST(TraceWriter, UnwritablePathIsAnError) {
  TempDir dir;
  trace::start((dir / "running.pftrace").string());
  const auto path = dir / "missing-folder" / "t.pftrace";
  try {
    trace::start(path.string());
    FAIL() << "expected an error";
  } catch (const meganeura::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(trace::enabled());
}

TEST(TraceWriter, DisabledTracingRecordsNothing) {
  TempDir dir;
  trace::stop();
  EXPECT_FALSE(trace::enabled());
  {
    trace::Scope scope("ignored");
    trace::instant("ignored");
  }
  const trace::GpuTrack gpu = trace::gpu_track("GPU");
  EXPECT_EQ(gpu.uuid, 0u);
  trace::gpu_slice(gpu, "kernel", "label", 1, 2);
  trace::flush();
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}
