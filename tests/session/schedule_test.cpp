// Inference kernels ordered by dependency depth (compile/schedule.h): independent chains share
// stages, and a KV-cache write still follows every kernel that reads the cache's old contents.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/session_impl.h"
#include "session/session_test_util.h"

namespace meganeura {
namespace {

using testing_support::random_feeds;
using testing_support::relative_error;

SessionOptions unfused() {
  SessionOptions options;
  options.optimize = false;
  return options;
}

TEST(Schedule, IndependentChainsShareStages) {
  // a1 -> a2 -> a3 and b1 -> b2, built in that order: in node order b1 would wait behind a2's
  // barrier and b2 behind a3's (3 barriers); by depth: {a1, b1} | {a2, b2} | {a3}.
  Graph g;
  auto x = g.input("x", {8, 8});
  auto w = g.input("w", {8, 8});
  auto a1 = g.matmul(x, w);
  auto a2 = g.matmul(a1, w);
  auto a3 = g.matmul(a2, w);
  auto b1 = g.matmul(w, x);
  auto b2 = g.matmul(b1, x);
  g.set_outputs({a3, b2});
  Session session = build_inference_session(g, unfused());
  EXPECT_EQ(session.barrier_count(), 2u);
  const auto feeds = random_feeds(g, 3);
  testing_support::apply(session, feeds);
  session.run();
  const auto expected = reference::run(g, feeds.reference);
  EXPECT_LE(relative_error(session.read_output(0), expected[a3.id]), 1e-5);
  EXPECT_LE(relative_error(session.read_output(1), expected[b2.id]), 1e-5);
}

TEST(Schedule, CacheWriteWaitsForReadersOfTheOldContents) {
  // A deep kernel reads the cache before the write (by node order); the write itself is shallow.
  // Ordered by depth alone the write would run first and the reader would see the new rows.
  Graph g;
  auto cache = g.input("cache", {1, 2, 4, 4});
  auto update = g.input("update", {1, 2, 1, 4});
  auto offset = g.input("offset", {1}, DType::i32);
  auto w = g.input("w", {4, 4});
  auto deep = g.matmul(g.matmul(w, w), w);
  auto old_rows = g.matmul(cache, deep);  // depth 3, reading the cache as it was
  auto written = g.kv_cache_write(cache, update, offset);
  g.set_outputs({old_rows, g.sum(written, 2)});
  Session session = build_inference_session(g, unfused());
  auto feeds = random_feeds(g, 4);
  feeds.ints["offset"] = {1};
  feeds.reference["offset"] = {1.0};
  testing_support::apply(session, feeds);
  session.run();
  const auto expected = reference::run(g, feeds.reference);
  EXPECT_LE(relative_error(session.read_output(0), expected[old_rows.id]), 1e-5);
  EXPECT_LE(relative_error(session.read_output(1), expected[g.outputs()[1]]), 1e-5);
  // The kernel that reads the cache itself comes before the write, with a barrier between them.
  const auto& kernels = session.impl().plan.kernels;
  size_t write = kernels.size(), reader = kernels.size();
  for (size_t k = 0; k < kernels.size(); ++k) {
    if (kernels[k].root == written.id) write = k;
    const auto& inputs = kernels[k].inputs;
    if (std::find(inputs.begin(), inputs.end(), cache.id) != inputs.end()) reader = k;
  }
  ASSERT_LT(write, kernels.size());
  EXPECT_LT(reader, write);
}

}  // namespace
}  // namespace meganeura
