// Every op with a GPU kernel, forward and gradient, against the CPU reference, under the real
// device caps and hand-made ones; outputs and the arena are poisoned with NaN first so an element
// that is never written shows up.
#include <functional>

#include "gpu/transfer.h"
#include "meganeura/autodiff.h"
#include "runtime/session_impl.h"
#include "session/session_test_util.h"

namespace meganeura {
namespace {

using testing_support::random_feeds;
using testing_support::relative_error;
using Leaf = std::function<Tensor(const std::string&, Shape)>;

struct OpCase {
  std::string name;
  std::function<Tensor(Graph&, const Leaf&)> build;
  bool differentiable = true;
  int int_high = 3;
};

Tensor positive(Graph& g, Tensor x) { return g.abs(x) + 0.5; }

std::vector<OpCase> op_cases() {
  std::vector<OpCase> cases = {
      {"add_broadcast", []([[maybe_unused]] Graph& g, const Leaf& l) { return l("a", {3, 4}) + l("b", {4}); }},
      {"sub", []([[maybe_unused]] Graph& g, const Leaf& l) { return l("a", {2, 1, 4}) - l("b", {3, 1}); }},
      {"mul", []([[maybe_unused]] Graph& g, const Leaf& l) { return l("a", {5, 3}) * l("b", {5, 1}); }},
      {"div", []([[maybe_unused]] Graph& g, const Leaf& l) { return l("a", {4, 3}) / positive(g, l("b", {4, 3})); }},
      {"neg_abs", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.abs(-l("a", {7})); }},
      {"exp", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.exp(l("a", {3, 5})); }},
      {"log", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.log(positive(g, l("a", {3, 5}))); }},
      {"sqrt", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.sqrt(positive(g, l("a", {9}))); }},
      {"rsqrt", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.rsqrt(positive(g, l("a", {9}))); }},
      {"recip", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.recip(positive(g, l("a", {9}))); }},
      {"pow", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.pow(l("a", {6}), 3.0); }},
      {"pow_fraction", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.pow(positive(g, l("a", {6})), 1.5); }},
      {"relu", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.relu(l("a", {4, 6})); }},
      {"gelu", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.gelu(l("a", {4, 6}) * 3.0); }},
      {"gelu_tanh", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.gelu_tanh(l("a", {4, 6}) * 3.0); }},
      {"silu", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.silu(l("a", {4, 6}) * 4.0); }},
      {"sigmoid", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.sigmoid(l("a", {4, 6}) * 4.0); }},
      {"tanh", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.tanh(l("a", {4, 6}) * 2.0); }},
      {"sin_cos", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.sin(l("a", {8})) + g.cos(l("b", {8})); }},
      {"maximum_minimum", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.maximum(l("a", {3, 4}), l("b", {4})) - g.minimum(l("c", {3, 4}), l("d", {3, 1})); }},
      {"greater_where", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.where(g.greater(l("a", {3, 4}), l("b", {4})), l("c", {3, 4}), l("d", {3, 4})); }},
      {"cast_i32", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cast(l("a", {10}) * 5.0, DType::i32); }, false},
      {"swiglu", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.swiglu(l("a", {3, 8}), l("b", {3, 8})); }},
      {"sum_axis0", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.sum(l("a", {5, 3, 4}), 0); }},
      {"sum_axis1_keepdim", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.sum(l("a", {5, 3, 4}), 1, true); }},
      {"mean_last", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.mean(l("a", {5, 300}), 1); }},
      {"max_axis", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.max(l("a", {6, 7}), 1); }},
      {"argmax", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.argmax(l("a", {6, 7}), 0); }, false},
      {"sum_all_prologue", []([[maybe_unused]] Graph& g, const Leaf& l) { Tensor x = l("a", {33, 17}); return g.sum_all(x * x); }},
      {"mean_all", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.mean_all(l("a", {700})); }},
      {"softmax_last", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.softmax(l("a", {4, 10}) * 3.0); }},
      {"softmax_axis0", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.softmax(l("a", {5, 3, 2}), 0); }},
      {"log_softmax", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.log_softmax(l("a", {4, 10})); }},
      {"softmax_grad", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.softmax_grad(g.softmax(l("a", {3, 6})), l("b", {3, 6})); }, false},
      {"log_softmax_grad", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.log_softmax_grad(g.log_softmax(l("a", {3, 6})), l("b", {3, 6})); }, false},
      {"layer_norm", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.layer_norm(l("a", {4, 20}), l("w", {20}), l("b", {20})); }},
      {"layer_norm_grad", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.layer_norm_grad(l("a", {4, 20}), l("w", {20}), l("d", {4, 20})); }, false},
      {"rms_norm", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.rms_norm(l("a", {4, 20}), l("w", {20})); }},
      {"rms_norm_grad", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.rms_norm_grad(l("a", {4, 20}), l("w", {20}), l("d", {4, 20})); }, false},
      {"cross_entropy", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cross_entropy_loss(l("a", {6, 5}) * 2.0, g.input("labels", {6}, DType::i32)); }, true, 5},
      {"cross_entropy_ignore", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cross_entropy_loss(l("a", {6, 3}), g.input("labels", {6}, DType::i32) - 1, -1); }, true, 4},
      {"cross_entropy_many_classes", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cross_entropy_loss(l("a", {3, 100}) * 2.0, g.input("labels", {3}, DType::i32)); }, true, 100},
      {"cross_entropy_probabilities_many_classes", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cross_entropy_loss(l("a", {3, 70}), g.softmax(l("p", {3, 70}))); }},
      {"cross_entropy_probabilities", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cross_entropy_loss(l("a", {4, 5}), g.softmax(l("p", {4, 5}))); }},
      {"cross_entropy_grad", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.cross_entropy_grad(l("a", {6, 5}), g.input("labels", {6}, DType::i32), g.scalar(0.7)); }, false, 5},
      {"mse_loss", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.mse_loss(l("a", {5, 4}), l("b", {5, 4})); }},
      {"bce_with_logits", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.bce_with_logits(l("a", {5, 4}) * 3.0, g.sigmoid(l("b", {5, 4}))); }},
      {"matmul", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.matmul(l("a", {5, 7}), l("b", {7, 3})); }},
      {"matmul_transposed", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.matmul(l("a", {7, 5}), l("b", {3, 7}), true, true); }},
      {"matmul_batched_broadcast", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.matmul(l("a", {2, 3, 4, 5}), l("b", {5, 6})); }},
      {"matmul_large_tiles", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.matmul(l("a", {70, 40}), l("b", {90, 40}), false, true); }},
      {"matmul_epilogue", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.relu(g.matmul(l("a", {9, 6}), l("b", {6, 5})) + l("bias", {5})) + l("r", {9, 5}); }},
      {"linear", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.linear(l("a", {4, 6}), l("w", {3, 6}), l("b", {3})); }},
      {"permute", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.permute(l("a", {2, 3, 4}), {2, 0, 1}); }},
      {"broadcast_to", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.broadcast_to(l("a", {3, 1}), {2, 3, 4}); }},
      {"slice", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.slice(l("a", {4, 6}), 1, 2, 5); }},
      {"concat", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.concat({l("a", {2, 3}), l("b", {2, 1}), l("c", {2, 2})}, 1); }},
      {"permute_order_kept", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.exp(g.permute(l("a", {1, 3, 1, 4}), {0, 2, 1, 3})) * l("b", {3, 1, 1, 4}); }},
      {"reshape_alias", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.exp(g.reshape(l("a", {2, 6}), {3, 4})); }},
      {"embedding", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.embedding(l("table", {5, 4}), g.input("ids", {2, 3}, DType::i32)); }, true, 5},
      {"scatter_add_rows", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.scatter_add_rows(l("a", {6, 4}), g.input("ids", {6}, DType::i32), 5); }, true, 5},
      {"dropout", []([[maybe_unused]] Graph& g, const Leaf& l) { return g.dropout(l("a", {64}), g.scalar(7, DType::i32), g.scalar(3, DType::i32), 0.3); }},
  };
  return cases;
}

compile::DeviceCaps caps_variant(int variant) {
  compile::DeviceCaps caps = gpu::Context::shared()->caps();
  if (variant == 0) return caps;
  const uint32_t subgroup[] = {8, 32, 64};
  caps.subgroup_size = caps.min_subgroup_size = caps.max_subgroup_size = subgroup[(variant - 1) % 3];
  caps.max_shared_memory_bytes = 16 * 1024;
  if (variant == 2) caps.max_workgroup_invocations = 64;  // small workgroups: 8×8 matmul tiles
  return caps;
}

void poison(Session& session) {
  auto& impl = session.impl();
  for (size_t i = 0; i < impl.plan.buffers.size(); ++i) {
    const auto kind = impl.plan.buffers[i].kind;
    if (kind == compile::BufferKind::arena || kind == compile::BufferKind::output) {
      gpu::fill(*impl.buffers[i], 0x7fc00000u);  // NaN
    }
  }
}

// Re-runs every kernel with its output bound between two poisoned guard zones: the guards must
// survive (no write outside the binding) and no output element may keep the poison.
void expect_writes_stay_inside(Session& session) {
  auto& impl = session.impl();
  const uint32_t poison_bits = 0x7fc00001u;
  const uint64_t guard = 256;
  for (size_t k = 0; k < impl.plan.kernels.size(); ++k) {
    const compile::Kernel& kernel = impl.plan.kernels[k];
    const compile::Storage& out = kernel.bindings.back();
    gpu::Buffer guarded(impl.context, 2 * guard + out.bytes, gpu::MemoryKind::DeviceLocal, "guarded output");
    gpu::fill(guarded, poison_bits);
    std::vector<gpu::BufferRange> ranges;
    for (size_t b = 0; b + 1 < kernel.bindings.size(); ++b) {
      const compile::Storage& in = kernel.bindings[b];
      ranges.push_back({impl.buffers[in.buffer].get(), in.offset, std::max<uint64_t>(in.bytes, 4)});
    }
    ranges.push_back({&guarded, guard, out.bytes});
    gpu::DescriptorSet set(*impl.kernel_pipelines[k], ranges);
    gpu::Recording once(impl.context);
    once.dispatch(*impl.kernel_pipelines[k], set, {}, kernel.workgroups);
    once.finish();
    once.run();
    std::vector<uint32_t> words((2 * guard + out.bytes) / 4);
    gpu::download(guarded, 0, std::as_writable_bytes(std::span(words)));
    for (size_t i = 0; i < words.size(); ++i) {
      const bool in_guard = i < guard / 4 || i >= (guard + out.bytes) / 4;
      if (in_guard) {
        ASSERT_EQ(words[i], poison_bits) << kernel.label << " wrote outside its output at word " << i;
      } else {
        ASSERT_NE(words[i], poison_bits) << kernel.label << " left output element " << i - guard / 4 << " unwritten";
      }
    }
  }
}

class OpTest : public ::testing::TestWithParam<std::tuple<OpCase, int>> {};

TEST_P(OpTest, ForwardMatchesReference) {
  const auto& [op, variant] = GetParam();
  Graph g;
  Leaf leaf = [&](const std::string& name, Shape shape) { return g.input(name, std::move(shape)); };
  g.set_outputs({op.build(g, leaf)});
  const auto feeds = random_feeds(g, 11, op.int_high);
  reference::Options reference_options;
  reference_options.training = false;  // inference sessions: dropout is the identity
  const auto reference_values = reference::run(g, feeds.reference, reference_options);
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(g, options, caps_variant(variant), false);
  testing_support::apply(session, feeds);
  poison(session);
  session.run();
  const double error = relative_error(session.read_output(0), reference_values[g.outputs()[0]]);
  EXPECT_LE(error, 1e-5) << op.name << "\n" << session.plan_summary();
  expect_writes_stay_inside(session);
}

TEST_P(OpTest, GradientMatchesReference) {
  const auto& [op, variant] = GetParam();
  if (!op.differentiable || variant != 0) GTEST_SKIP() << "no gradient for this case";
  Graph g;
  Leaf leaf = [&](const std::string& name, Shape shape) {
    return g.parameter(name, std::move(shape), Init::uniform(-1, 1));
  };
  Tensor out = op.build(g, leaf);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> weights(static_cast<size_t>(num_elements(out.shape())));
  for (float& w : weights) w = uniform(rng);
  g.set_outputs({g.sum_all(out * g.constant(weights, out.shape()))});
  const auto feeds = random_feeds(g, 12, op.int_high);
  const GradientGraph d = differentiate(g);
  reference::Options reference_options;
  reference_options.training = true;
  reference_options.seed = 3;
  const auto reference_values = reference::run(d.graph, feeds.reference, reference_options);
  SessionOptions options;
  options.seed = 3;
  options.optimize = false;
  options.optimizer = OptimizerSpec::sgd(0.0);
  Session session = runtime::build_session_for_caps(g, options, caps_variant(variant), true);
  testing_support::apply(session, feeds);
  poison(session);
  session.step();
  for (const std::string& name : d.parameters) {
    const double error = relative_error(session.read_gradient(name), reference_values[d.gradients.at(name)]);
    EXPECT_LE(error, 1e-5) << op.name << " gradient of " << name << "\n" << session.plan_summary();
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<OpCase, int>>& info) {
  return std::get<0>(info.param).name + "_caps" + std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTest, ::testing::Combine(::testing::ValuesIn(op_cases()), ::testing::Values(0, 1, 2, 3)),
                         case_name);

}  // namespace
}  // namespace meganeura
