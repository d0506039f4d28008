#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "meganeura/graph.h"

using namespace meganeura;

namespace {

// The message of the Error that f throws.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

}  // namespace

TEST(Graph, LeavesAndBuildersInferShapes) {
  Graph g;
  Tensor x = g.input("x", {4, 3});
  Tensor w = g.parameter("fc.weight", {5, 3}, Init::kaiming());
  Tensor b = g.parameter("fc.bias", {5});
  Tensor y = g.matmul(x, w, false, true) + b;
  EXPECT_EQ(y.shape(), (Shape{4, 5}));
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.rank(), 2);
  EXPECT_EQ(y.dim(-1), 5);
  Tensor ids = g.input("ids", {2, 7}, DType::i32);
  Tensor table = g.parameter("embed", {11, 6}, Init::normal(0, 0.02));
  EXPECT_EQ(g.embedding(table, ids).shape(), (Shape{2, 7, 6}));
  EXPECT_EQ(g.sum(x, -1).shape(), (Shape{4}));
  EXPECT_EQ(g.mean(x, 0, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(g.argmax(x, 1).dtype(), DType::i32);
  EXPECT_EQ(g.sum_all(x).shape(), Shape{});
  EXPECT_EQ(g.cast(x, DType::bf16).dtype(), DType::bf16);
  EXPECT_EQ(g.reshape(x, {-1}).shape(), (Shape{12}));
  EXPECT_EQ(g.transpose(x).shape(), (Shape{3, 4}));
  EXPECT_EQ(g.node(g.transpose(x).id).op, Op::permute);
  EXPECT_EQ(g.broadcast_to(b, {2, 4, 5}).shape(), (Shape{2, 4, 5}));
  EXPECT_EQ(g.concat({x, x, g.slice(x, 0, 1, 3)}, 0).shape(), (Shape{10, 3}));
  // Axes are stored non-negative, so equal nodes compare equal.
  EXPECT_EQ(g.node(g.sum(x, -1).id).attrs, g.node(g.sum(x, 1).id).attrs);
}

TEST(Graph, OperatorsBroadcastAndTakeScalars) {
  Graph g;
  Tensor a = g.input("a", {2, 1, 3});
  Tensor b = g.input("b", {4, 1});
  EXPECT_EQ((a + b).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ((a - b).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ((a * b).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ((a / b).shape(), (Shape{2, 4, 3}));
  Tensor c = 2.0 * a - 1.0;
  EXPECT_EQ(c.shape(), a.shape());
  const Node& sub = g.node(c.id);
  EXPECT_EQ(sub.op, Op::sub);
  EXPECT_EQ(g.node(sub.inputs[1]).op, Op::scalar);
  EXPECT_EQ(g.node(sub.inputs[1]).attrs.value, 1.0);
  EXPECT_EQ(g.node((-a).id).op, Op::neg);
  EXPECT_EQ(g.node((1.0 / a).id).op, Op::div);
  Tensor i = g.input("i", {3}, DType::i32);
  EXPECT_EQ((i + 1.0).dtype(), DType::i32);  // the scalar takes the tensor's dtype
}

TEST(Graph, SplitReturnsSlices) {
  Graph g;
  Tensor x = g.input("x", {2, 9});
  auto parts = g.split(x, -1, {2, 3, 4});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(parts[2].shape(), (Shape{2, 4}));
  EXPECT_EQ(g.node(parts[1].id).op, Op::slice);
  EXPECT_EQ(g.node(parts[1].id).attrs.ints, (std::vector<int64_t>{2, 5}));
  EXPECT_CONTAINS(error_of([&] { g.split(x, 1, {4, 4}); }), "add up to 8 but axis 1 of [2, 9] has 9");
}

TEST(Graph, NamesFindAndErrors) {
  Graph g;
  Tensor x = g.input("tokens", {2}, DType::i32);
  g.parameter("model.embed_tokens.weight", {3, 2});
  EXPECT_EQ(g.find("tokens"), x.id);
  EXPECT_TRUE(g.contains("model.embed_tokens.weight"));
  EXPECT_CONTAINS(error_of([&] { g.input("tokens", {3}); }), "duplicate name \"tokens\"");
  EXPECT_CONTAINS(error_of([&] { g.parameter("tokens", {3}); }), "already used by node %0 (input)");
  EXPECT_CONTAINS(error_of([&] { g.find("token"); }), "unknown name \"token\"");
  EXPECT_CONTAINS(error_of([&] { g.find("token"); }), "did you mean \"tokens\"?");
  EXPECT_EQ(error_of([&] { g.find("zzzzzzzzzzzzzzzzzzzzzzzz"); }).find("did you mean"), std::string::npos);
  EXPECT_CONTAINS(error_of([&] { g.input("", {1}); }), "a name is required");
  Tensor y = g.cast(x, DType::f32) * 2.0;
  g.set_name(y, "doubled");
  EXPECT_EQ(g.find("doubled"), y.id);
  g.set_name(y, "renamed");
  EXPECT_FALSE(g.contains("doubled"));
  EXPECT_CONTAINS(error_of([&] { g.set_name(y, "tokens"); }), "duplicate name");
}

TEST(Graph, OutputsMustBeSet) {
  Graph g;
  Tensor x = g.input("x", {2});
  EXPECT_FALSE(g.has_outputs());
  EXPECT_CONTAINS(error_of([&] { g.outputs(); }), "graph has no outputs: call Graph::set_outputs");
  EXPECT_CONTAINS(error_of([&] { g.set_outputs({}); }), "the list is empty");
  g.set_outputs({g.exp(x)});
  EXPECT_EQ(g.outputs(), std::vector<int32_t>{1});
}

TEST(Graph, InputsAndParametersInCreationOrder) {
  Graph g;
  Tensor a = g.input("a", {1});
  Tensor p = g.parameter("p", {1}, Init::ones(), false);
  Tensor b = g.input("b", {1});
  g.add(a, b);
  EXPECT_EQ(g.inputs(), (std::vector<int32_t>{a.id, b.id}));
  EXPECT_EQ(g.parameters(), (std::vector<int32_t>{p.id}));
  EXPECT_FALSE(g.node(p.id).trainable);
  EXPECT_EQ(g.node(p.id).init, Init::ones());
}

TEST(Graph, OperandsFromAnotherGraphOrEmptyHandlesAreRejected) {
  Graph g, h;
  Tensor x = g.input("x", {2});
  Tensor y = h.input("y", {2});
  EXPECT_CONTAINS(error_of([&] { g.add(x, y); }), "belongs to another graph");
  EXPECT_CONTAINS(error_of([&] { g.exp(Tensor{}); }), "empty handle");
  EXPECT_CONTAINS(error_of([&] { Tensor{}.shape(); }), "empty handle");
  EXPECT_CONTAINS(error_of([&] { g.node(7); }), "id 7 is out of range (the graph has 1 nodes)");
}

TEST(Graph, AddNodeValidatesAndInfers) {
  Graph g;
  Tensor x = g.input("x", {2, 3});
  Node n;
  n.op = Op::softmax;
  n.inputs = {x.id};
  n.attrs.axis = -1;
  n.shape = {99};  // ignored: inference decides
  Tensor s = g.add_node(n);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(g.node(s.id).attrs.axis, 1);
  Node bad;
  bad.op = Op::add;
  bad.inputs = {x.id};
  EXPECT_CONTAINS(error_of([&] { g.add_node(bad); }), "add: expects 2 inputs, got 1");
  bad.inputs = {x.id, 5};
  EXPECT_CONTAINS(error_of([&] { g.add_node(bad); }), "input id 5 does not name an earlier node");
  Node c;
  c.op = Op::constant;
  c.shape = {2, 2};
  c.data = {1, 2, 3};
  EXPECT_CONTAINS(error_of([&] { g.add_node(c); }), "3 values given for shape [2, 2], which holds 4");
}

TEST(Graph, InferTypeIsUsableWithoutAGraph) {
  Attrs a;
  a.transpose_b = true;
  const TensorType t = infer_type(Op::matmul, a, {{{8, 2, 3}, DType::f16}, {{5, 3}, DType::f16}});
  EXPECT_EQ(t.shape, (Shape{8, 2, 5}));
  EXPECT_EQ(t.dtype, DType::f16);
  EXPECT_THROW(infer_type(Op::input, {}, {}), Error);
}

TEST(Graph, DumpListsOneLinePerNode) {
  Graph g;
  Tensor x = g.input("x", {4, 3});
  Tensor w = g.parameter("w", {5, 3}, Init::normal(0, 0.02));
  Tensor y = g.matmul(x, w, false, true);
  Tensor s = g.sum(y, 1, true);
  g.set_name(s, "total");
  Tensor c = g.constant({1, 2.5f, 3, 4, 5}, {5});
  Tensor ids = g.input("ids", {2}, DType::i32);
  g.set_outputs({s, g.embedding(g.reshape(c, {5, 1}), ids)});
  EXPECT_EQ(g.dump(),
            "%0 = input() : [4, 3] f32 \"x\"\n"
            "%1 = parameter() init=normal(0, 0.02) : [5, 3] f32 \"w\"\n"
            "%2 = matmul(%0, %1) transpose_b=true : [4, 5] f32\n"
            "%3 = sum(%2) axis=1 keepdim=true : [4, 1] f32 \"total\"\n"
            "%4 = constant() data=[1, 2.5, 3, 4, ...] : [5] f32\n"
            "%5 = input() : [2] i32 \"ids\"\n"
            "%6 = reshape(%4) ints=[5, 1] : [5, 1] f32\n"
            "%7 = embedding(%6, %5) : [2, 1] f32\n"
            "outputs: %3 %7\n");
  EXPECT_EQ(to_string(g), g.dump());
}

TEST(Init, DeterministicAndWithTheRightStatistics) {
  const Shape shape{64, 128};
  const auto a = initial_values(Init::normal(0.5, 2.0), shape, 7);
  EXPECT_EQ(a, initial_values(Init::normal(0.5, 2.0), shape, 7));
  EXPECT_NE(a, initial_values(Init::normal(0.5, 2.0), shape, 8));
  auto stats = [](const std::vector<float>& v, double& mean, double& std) {
    mean = 0;
    for (float x : v) mean += x;
    mean /= static_cast<double>(v.size());
    double var = 0;
    for (float x : v) var += (x - mean) * (x - mean);
    std = std::sqrt(var / static_cast<double>(v.size()));
  };
  double mean, std;
  stats(a, mean, std);
  EXPECT_NEAR(mean, 0.5, 0.1);
  EXPECT_NEAR(std, 2.0, 0.1);
  stats(initial_values(Init::kaiming(), shape, 1), mean, std);  // fan_in = 128
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(std, std::sqrt(2.0 / 128), 0.005);
  const auto x = initial_values(Init::xavier(), {3, 4, 2, 2}, 3);  // fan_in 16, fan_out 12
  const double bound = std::sqrt(6.0 / 28);
  double largest = 0;
  for (float v : x) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  EXPECT_LE(largest, bound);
  EXPECT_GT(largest, 0.5 * bound);
  for (float v : initial_values(Init::uniform(2, 3), {100}, 1)) {
    EXPECT_GE(v, 2.0f);
    EXPECT_LT(v, 3.0f);
  }
  EXPECT_EQ(initial_values(Init::ones(), {2, 2}, 1), std::vector<float>(4, 1.0f));
  EXPECT_EQ(initial_values(Init::zeros(), {3}, 1), std::vector<float>(3, 0.0f));
  EXPECT_NE(parameter_seed(0, "a.weight"), parameter_seed(0, "b.weight"));
  EXPECT_EQ(parameter_seed(3, "a.weight"), parameter_seed(3, "a.weight"));
}

TEST(Dropout, HashIsFixedAndKeepsAboutOneMinusP) {
  // The documented formula, written out independently: a GPU shader must compute exactly this.
  auto mix32 = [](uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
  };
  for (uint32_t i : {0u, 1u, 77u, 123456u, 0xffffffffu})
    EXPECT_EQ(dropout_hash(3, 5, i), mix32(i ^ mix32(5u ^ mix32(3u))));
  EXPECT_EQ(dropout_threshold(0.25), 4194304u);
  int kept = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) kept += dropout_keep(5, 9, static_cast<uint32_t>(i), 0.3);
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 0.015);
  int same = 0;
  for (int i = 0; i < 1000; ++i)
    same += dropout_keep(5, 9, static_cast<uint32_t>(i), 0.5) == dropout_keep(5, 10, static_cast<uint32_t>(i), 0.5);
  EXPECT_LT(same, 600);  // another step draws another mask
}
