// A traced training session: build stages are nested CPU slices, every step is a slice, and every
// replayed dispatch is one GPU slice named after its kernel, labelled with its nodes, aligned with
// the step that ran it. Tracing off records no timestamp queries and no extra commands or barriers.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "support/temp_dir.h"
#include "meganeura/trace.h"
#include "runtime/session_impl.h"
#include "session/session_test_util.h"
#include "trace/trace_decoder.h"

namespace meganeura {
namespace {

Graph small_mlp() {
  Graph g;
  auto x = g.input("x", {8, 6});
  auto labels = g.input("labels", {8}, DType::i32);
  auto w1 = g.parameter("fc1.weight", {5, 6}, Init::kaiming());
  auto b1 = g.parameter("fc1.bias", {5}, Init::uniform(-0.5, 0.5));
  auto w2 = g.parameter("fc2.weight", {3, 5}, Init::xavier());
  auto b2 = g.parameter("fc2.bias", {3});
  auto hidden = g.relu(g.matmul(x, w1, false, true) + b1);
  g.set_outputs({g.cross_entropy_loss(g.matmul(hidden, w2, false, true) + b2, labels)});
  return g;
}

SessionOptions training_options() {
  SessionOptions options;
  options.seed = 5;
  options.optimizer = OptimizerSpec::adam(0.01);
  return options;
}

bool is_gpu(const Slice& slice) {
  return std::find(slice.categories.begin(), slice.categories.end(), "gpu") != slice.categories.end();
}

bool inside(const std::vector<Slice>& slices, const Slice& slice, const std::string& ancestor) {
  for (int at = slice.parent; at >= 0; at = slices[at].parent) {
    if (slices[at].name == ancestor) return true;
  }
  return false;
}

const Slice* find_slice(const std::vector<Slice>& slices, const std::string& name) {
  for (const Slice& slice : slices) {
    if (slice.name == name) return &slice;
  }
  return nullptr;
}

TEST(SessionTrace, BuildStagesStepsAndEveryDispatch) {
  TempDir dir;
  const Graph graph = small_mlp();
  trace::start((dir / "session.pftrace").string());
  std::vector<std::string> names, labels;
  std::vector<float> losses;
  {
    Session session = build_session(graph, training_options());
    testing_support::apply(session, testing_support::random_feeds(graph, 9));
    for (int i = 0; i < 3; ++i) {
      session.step();
      losses.push_back(session.read_loss());
    }
    names = session.impl().recording->names();
    labels = session.kernel_labels();
  }
  trace::stop();
  EXPECT_LT(losses.back(), losses.front());  // the traced session still trains

  const std::vector<Slice> slices = rebuild_slices(decode_trace(dir / "session.pftrace"));
  for (const char* stage : {"optimize", "autodiff", "compile", "memory planning", "codegen", "shaders",
                            "pipeline creation", "record"}) {
    const Slice* slice = find_slice(slices, stage);
    ASSERT_NE(slice, nullptr) << "no slice for the build stage " << stage;
    EXPECT_TRUE(inside(slices, *slice, "build_session")) << stage << " is not nested in build_session";
    EXPECT_LE(slice->begin, slice->end) << stage;
  }
  EXPECT_TRUE(inside(slices, *find_slice(slices, "memory planning"), "compile"));
  EXPECT_TRUE(inside(slices, *find_slice(slices, "saturate"), "optimize"));
  EXPECT_NE(find_slice(slices, "shader compilation"), nullptr);

  std::vector<const Slice*> steps, gpu;
  for (const Slice& slice : slices) {
    if (slice.name == "step" && !is_gpu(slice)) steps.push_back(&slice);
    if (is_gpu(slice)) gpu.push_back(&slice);
  }
  ASSERT_EQ(steps.size(), 3u);
  ASSERT_EQ(gpu.size(), 3 * labels.size()) << "one GPU slice per dispatch of every replay";
  ASSERT_EQ(names.size(), labels.size());
  std::set<uint64_t> gpu_tracks;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const Slice& slice = *gpu[i];
    gpu_tracks.insert(slice.track_uuid);
    EXPECT_EQ(slice.name, names[i % names.size()]);
    EXPECT_EQ(slice.label, labels[i % labels.size()]);
    EXPECT_EQ(slice.depth, 0);
    EXPECT_LE(slice.begin, slice.end);
    if (i > 0) {
      EXPECT_GE(slice.begin, gpu[i - 1]->end) << "GPU slices run forward in time";
    }
    // Each replay's dispatches lie within the step that submitted it (1 ms for the clock offset's
    // uncertainty).
    const Slice& step = *steps[i / labels.size()];
    EXPECT_GE(slice.begin + 1'000'000, step.begin) << slice.name;
    EXPECT_LE(slice.end, step.end + 1'000'000) << slice.name;
  }
  EXPECT_EQ(gpu_tracks.size(), 1u);
  EXPECT_EQ(gpu_tracks.count(steps[0]->track_uuid), 0u) << "GPU slices have their own track";
  for (const std::string& name : names) {
    EXPECT_NE(name, "dispatch") << "every dispatch is named after its kernel";
  }
}

TEST(SessionTrace, TracingOffRecordsNoQueriesAndTheSameCommands) {
  TempDir dir;
  const Graph graph = small_mlp();
  ASSERT_FALSE(trace::enabled());
  Session plain = build_session(graph, training_options());
  const gpu::Recording& untraced = *plain.impl().recording;
  EXPECT_EQ(untraced.query_count(), 0u);

  trace::start((dir / "queries.pftrace").string());
  Session traced = build_session(graph, training_options());
  trace::stop();
  const gpu::Recording& with_queries = *traced.impl().recording;
  EXPECT_EQ(with_queries.query_count(), 2 * with_queries.command_count());
  EXPECT_EQ(with_queries.command_count(), untraced.command_count());
  EXPECT_EQ(with_queries.barrier_count(), untraced.barrier_count());
  EXPECT_EQ(with_queries.labels(), untraced.labels());
  EXPECT_EQ(plain.impl().forward_only->query_count(), 0u);
}

TEST(SessionTrace, ProfileGivesOneTimePerDispatch) {
  const Graph graph = small_mlp();
  Session session = build_session(graph, training_options());
  testing_support::apply(session, testing_support::random_feeds(graph, 4));
  const std::vector<KernelTime> times = session.profile(2);
  const std::vector<std::string> labels = session.kernel_labels();
  ASSERT_EQ(times.size(), labels.size());
  double total = 0;
  for (size_t i = 0; i < times.size(); ++i) {
    EXPECT_EQ(times[i].label, labels[i]);
    EXPECT_GE(times[i].microseconds, 0.0);
    total += times[i].microseconds;
  }
  EXPECT_GT(total, 0.0);
}

}  // namespace
}  // namespace meganeura
