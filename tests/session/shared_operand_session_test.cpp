// Products sharing their left operand, merged into one wider product over stacked weights: at
// inference the stack is a derived copy refreshed when parameters change (set_parameter,
// load_parameters, another session's upload of shared parameters), the slices are views, and every
// parameter keeps its own identity; in training the step equals the unmerged one.
#include <algorithm>
#include <filesystem>
#include <tuple>

#include "meganeura/optimize.h"
#include "runtime/session_impl.h"
#include "session/session_test_util.h"

namespace meganeura {
namespace {

using testing_support::random_feeds;
using testing_support::relative_error;

// One token's q/k/v projections (widths multiple of 64 floats: the slices start 256-byte aligned).
Graph qkv_graph(int64_t rows) {
  Graph g;
  Tensor x = g.input("x", {1, rows, 64});
  auto proj = [&](const std::string& name, int64_t out) {
    return g.matmul(x, g.parameter(name, {out, 64}, Init::normal(0, 0.3)), false, true);
  };
  Tensor q = proj("q", 128), k = proj("k", 64), v = proj("v", 64);
  // Reductions read the products (a matmul fuses only pointwise consumers as its epilogue).
  g.set_outputs({g.softmax(q, -1), g.softmax(k * 2.0, -1), g.log_softmax(v, -1)});
  return g;
}

size_t count_kernels(const compile::Plan& plan, Op op, bool refresh) {
  return static_cast<size_t>(std::count_if(plan.kernels.begin(), plan.kernels.end(), [&](const compile::Kernel& k) {
    return k.refresh == refresh && plan.graph.node(k.anchor).op == op;
  }));
}

// Runs the session and checks every output against the reference with the session's own parameters.
void expect_matches_reference(Session& session, const Graph& graph, uint32_t seed) {
  auto feeds = random_feeds(graph, seed);
  testing_support::apply(session, feeds);
  for (const std::string& name : session.parameter_names()) {
    const std::vector<float> values = session.read_parameter(name);
    feeds.reference[name] = std::vector<double>(values.begin(), values.end());
  }
  session.run();
  const auto want = reference::run(graph, feeds.reference);
  for (size_t i = 0; i < graph.outputs().size(); ++i) {
    EXPECT_LT(relative_error(session.read_output(i), want.at(static_cast<size_t>(graph.outputs()[i]))), 1e-5)
        << "output " << i;
  }
}

std::vector<float> random_values(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = uniform(rng);
  return v;
}

TEST(SharedOperandSession, DecodeRunsOneProductOverARefreshedStack) {
  const Graph g = qkv_graph(1);
  SessionOptions options;
  options.seed = 3;
  Session merged = build_inference_session(g, options);
  const compile::Plan& plan = merged.impl().plan;
  EXPECT_EQ(count_kernels(plan, Op::matmul, false), 1u);
  EXPECT_EQ(count_kernels(plan, Op::concat, true), 1u);  // the stacked weights: refreshed, not per step
  EXPECT_EQ(count_kernels(plan, Op::slice, false), 0u);  // slices are views of the wide product
  options.optimize = false;
  Session plain = build_inference_session(g, options);
  EXPECT_LT(merged.dispatch_count(), plain.dispatch_count());
  EXPECT_EQ(merged.parameter_names(), plain.parameter_names());
  for (const std::string& name : plain.parameter_names()) EXPECT_EQ(merged.read_parameter(name), plain.read_parameter(name));
  expect_matches_reference(merged, g, 1);

  // A parameter changed after build: the next run uses it, and the parameter reads back as itself.
  const std::vector<float> k = random_values(64 * 64, 11);
  merged.set_parameter("k", std::span<const float>(k));
  EXPECT_EQ(merged.read_parameter("k"), k);
  expect_matches_reference(merged, g, 2);

  // load_parameters refreshes too.
  const std::vector<float> q = random_values(128 * 64, 12), v = random_values(64 * 64, 13);
  plain.set_parameter("q", std::span<const float>(q));
  plain.set_parameter("v", std::span<const float>(v));
  const auto path = std::filesystem::path(::testing::TempDir()) / "shared_operand_load.safetensors";
  plain.save_parameters(path.string());
  merged.load_parameters(path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(merged.read_parameter("q"), q);
  expect_matches_reference(merged, g, 3);
  auto feeds = random_feeds(g, 4);
  testing_support::apply(merged, feeds);
  testing_support::apply(plain, feeds);
  merged.run();
  plain.run();
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const auto want = plain.read_output(i);
    EXPECT_LT(relative_error(merged.read_output(i), std::vector<double>(want.begin(), want.end())), 1e-6);
  }
}

TEST(SharedOperandSession, SharedParametersRefreshTheBorrowersStack) {
  const Graph prefill_graph = qkv_graph(4), decode_graph = qkv_graph(1);
  Session prefill = build_inference_session(prefill_graph, {});
  SessionOptions options;
  options.share_parameters_with = &prefill;
  Session decode = build_inference_session(decode_graph, options);
  ASSERT_EQ(count_kernels(decode.impl().plan, Op::concat, true), 1u);
  expect_matches_reference(decode, decode_graph, 5);
  const std::vector<float> v = random_values(64 * 64, 21);
  prefill.set_parameter("v", std::span<const float>(v));  // through the lender
  EXPECT_EQ(decode.read_parameter("v"), v);
  expect_matches_reference(decode, decode_graph, 6);
  expect_matches_reference(prefill, prefill_graph, 7);
}

TEST(SharedOperandSession, ABorrowerKeepsTheLendersStack) {
  // Two one-row sessions over the same weights (a decode step and a prefill's last row): the
  // borrower's stack is the lender's buffer, which either session's refresh keeps current.
  const Graph decode_graph = qkv_graph(1);
  Session decode = build_inference_session(decode_graph, {});
  const uint64_t stack = decode.memory_summary().derived;
  ASSERT_GT(stack, 0u);
  SessionOptions options;
  options.share_parameters_with = &decode;
  Session borrower = build_inference_session(decode_graph, options);
  EXPECT_EQ(borrower.memory_summary().derived, 0u);
  EXPECT_EQ(borrower.memory_summary().shared_parameters, decode.memory_summary().parameters + stack);
  expect_matches_reference(borrower, decode_graph, 31);
  const std::vector<float> q = random_values(128 * 64, 32);
  borrower.set_parameter("q", std::span<const float>(q));  // through the borrower this time
  expect_matches_reference(decode, decode_graph, 33);
  expect_matches_reference(borrower, decode_graph, 34);

  // Stacked from other weights (here: in another order), the stack is the session's own.
  Graph other;
  Tensor x = other.input("x", {1, 1, 64});
  auto proj = [&](const std::string& name, int64_t out) {
    return other.matmul(x, other.parameter(name, {out, 64}, Init::normal(0, 0.3)), false, true);
  };
  Tensor v = proj("v", 64), k = proj("k", 64), q2 = proj("q", 128);
  other.set_outputs({other.log_softmax(v, -1), other.softmax(k * 2.0, -1), other.softmax(q2, -1)});
  Session own = build_inference_session(other, options);
  EXPECT_GT(own.memory_summary().derived, 0u) << own.plan_summary();
  expect_matches_reference(own, other, 35);
}

TEST(SharedOperandSession, AlignedContiguousSlicesAreViews) {
  // A slice of one row's columns is one contiguous run: a view when it starts on the device's
  // offset alignment, a copy otherwise; several rows are never contiguous.
  auto build = [](int64_t rows, int64_t begin) {
    Graph g;
    Tensor a = g.input("a", {rows, 96}), b = g.input("b", {96, 96});
    Tensor product = g.matmul(a, b);
    g.set_outputs({g.softmax(g.slice(product, 1, begin, begin + 32), -1)});
    return g;
  };
  compile::DeviceCaps caps = gpu::Context::shared()->caps();
  caps.min_storage_buffer_offset_alignment = 256;
  for (auto [rows, begin, view] : {std::tuple{1, 64, true}, std::tuple{1, 32, false}, std::tuple{2, 64, false}}) {
    const Graph g = build(rows, begin);
    Session session = runtime::build_session_for_caps(g, {}, caps, /*training=*/false);
    EXPECT_EQ(count_kernels(session.impl().plan, Op::slice, false), view ? 0u : 1u) << rows << " rows from " << begin;
    expect_matches_reference(session, g, 9);
  }
}

TEST(SharedOperandSession, TrainingStepEqualsTheUnmergedOne) {
  Graph g;
  Tensor x = g.input("x", {1, 64});
  Tensor target = g.input("target", {1, 256});
  Tensor gate = g.parameter("gate", {128, 64}, Init::normal(0, 0.3));
  Tensor up = g.parameter("up", {64, 64}, Init::normal(0, 0.3));
  Tensor down = g.parameter("down", {64, 64}, Init::normal(0, 0.3));
  Tensor y = g.concat({g.tanh(g.matmul(x, gate, false, true)), g.matmul(x, up, false, true),
                       g.sigmoid(g.matmul(x, down, false, true))},
                      1);
  g.set_outputs({g.mse_loss(y, target)});
  SessionOptions options;
  options.seed = 5;
  options.optimizer = OptimizerSpec::sgd(0.5);
  Session merged = build_session(g, options);
  // The weights are stacked by a kernel of the step (their gradient is split back by autodiff).
  const compile::Plan& plan = merged.impl().plan;
  ASSERT_TRUE(std::any_of(plan.kernels.begin(), plan.kernels.end(), [&](const compile::Kernel& k) {
    const Node& anchor = plan.graph.node(k.anchor);
    return anchor.op == Op::concat && anchor.inputs.size() == 3 && plan.graph.node(anchor.inputs[0]).name == "gate";
  }));
  options.optimize = false;
  Session plain = build_session(g, options);
  EXPECT_LT(count_kernels(plan, Op::matmul, false), count_kernels(plain.impl().plan, Op::matmul, false));
  const auto feeds = random_feeds(g, 8);
  for (Session* s : {&merged, &plain}) {
    testing_support::apply(*s, feeds);
    s->step();
  }
  EXPECT_NEAR(merged.read_loss(), plain.read_loss(), 1e-6);
  for (const char* name : {"gate", "up", "down"}) {
    const auto a = merged.read_gradient(name), b = plain.read_gradient(name);
    EXPECT_LT(relative_error(a, std::vector<double>(b.begin(), b.end())), 1e-5) << name;
    const auto pa = merged.read_parameter(name), pb = plain.read_parameter(name);
    ASSERT_EQ(pa.size(), pb.size());
    double worst = 0;
    for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, double(std::abs(pa[i] - pb[i])));
    EXPECT_LT(worst, 1e-5) << name << ": the trained parameter, not a stale stack";
  }
  // A second step reads the updated weights through a freshly stacked copy.
  for (Session* s : {&merged, &plain}) s->step();
  EXPECT_NEAR(merged.read_loss(), plain.read_loss(), 1e-5);
}

}  // namespace
}  // namespace meganeura
