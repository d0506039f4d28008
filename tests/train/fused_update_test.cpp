// Updates folded into the kernels that compute the gradients (runtime/fused_update.h): the whole
// step must leave parameters, gradients and optimizer state exactly as compute_gradients followed by
// apply_update (the separate update kernels) does; parameters read after their gradient's stage,
// clipping and optimizers with state keep the separate update.
#include <random>

#include "meganeura/models/smollm2.h"
#include "meganeura/session.h"
#include "runtime/fused_update.h"
#include "runtime/session_impl.h"
#include "train/train_test_util.h"

namespace meganeura {
namespace {

using train_testing::feed_random_batch;
using train_testing::tiny_mlp;

// Steps `whole` (fused updates) and `split` (compute_gradients + apply_update) alike and expects
// the same bits everywhere.
void expect_same_steps(const Graph& graph, const OptimizerSpec& spec, const std::string& what) {
  Session whole = build_session(graph, {.seed = 5, .optimizer = spec});
  Session split = build_session(graph, {.seed = 5, .optimizer = spec});
  for (uint32_t step = 0; step < 3; ++step) {
    feed_random_batch(whole, step);
    feed_random_batch(split, step);
    whole.step();
    split.compute_gradients();
    split.apply_update();
    EXPECT_EQ(split.read_loss(), whole.read_loss()) << what << ", step " << step;
    for (const std::string& name : whole.parameter_names()) {
      EXPECT_EQ(split.read_parameter(name), whole.read_parameter(name)) << what << ": " << name << ", step " << step;
      EXPECT_EQ(split.read_gradient(name), whole.read_gradient(name)) << what << ": " << name << ", step " << step;
    }
  }
  EXPECT_EQ(split.read_optimizer_state(), whole.read_optimizer_state()) << what;
}

TEST(FusedUpdate, SgdMatchesTheSeparateUpdate) {
  const Graph graph = tiny_mlp(4);
  Session probe = build_session(graph, {.seed = 5, .optimizer = OptimizerSpec::sgd(0.1)});
  // Every parameter of the MLP is read only before its gradient's stage, so every update folds in.
  EXPECT_EQ(probe.impl().fused_kernels.size(), probe.parameter_names().size());
  OptimizerSpec decay = OptimizerSpec::sgd(0.1);
  decay.weight_decay = 0.01;
  expect_same_steps(graph, OptimizerSpec::sgd(0.1), "sgd");
  expect_same_steps(graph, decay, "sgd with weight decay");
}

TEST(FusedUpdate, OptimizersWithStateKeepTheSeparateUpdate) {
  OptimizerSpec momentum = OptimizerSpec::sgd(0.1);
  momentum.momentum = 0.9;
  for (const OptimizerSpec& spec : {momentum, OptimizerSpec::adam(0.03), OptimizerSpec::adamw(0.05, 0.1)}) {
    Session session = build_session(tiny_mlp(4), {.seed = 5, .optimizer = spec});
    EXPECT_TRUE(session.impl().fused_kernels.empty());
  }
}

TEST(FusedUpdate, ParameterReadByTheGradientKernelKeepsTheSeparateUpdate) {
  // An L2 penalty in the graph: fc1.weight's gradient is x'·dy + 0.02·W, so whatever computes it
  // (or adds the penalty later) reads the weight it would update.
  Graph graph = tiny_mlp(4);
  const Tensor w{&graph, graph.find("fc1.weight")};
  const Tensor loss{&graph, graph.outputs()[0]};
  const Tensor logits{&graph, graph.outputs()[1]};
  Tensor penalized = graph.add(loss, graph.mul(graph.sum_all(graph.mul(w, w)), graph.scalar(0.01)));
  graph.set_outputs({penalized, logits});
  Session session = build_session(graph, {.seed = 5, .optimizer = OptimizerSpec::sgd(0.1)});
  const auto& s = session.impl();
  const int32_t param = s.plan.graph.find("fc1.weight");
  EXPECT_EQ(runtime::fusible_gradient_kernel(s.plan, param, s.gradient_nodes.at("fc1.weight")), -1);
  const int32_t bias = s.plan.graph.find("fc2.bias");
  EXPECT_GE(runtime::fusible_gradient_kernel(s.plan, bias, s.gradient_nodes.at("fc2.bias")), 0);
  expect_same_steps(graph, OptimizerSpec::sgd(0.1), "sgd with an L2 term in the graph");
}

TEST(FusedUpdate, StatefulUpdatesRunBesideTheRestOfTheBackwardPass) {
  // A two-layer Llama: the last layer's weights get their gradients while the backward pass still
  // has the first layer to go, and nothing reads them after; their AdamW updates are recorded then,
  // not after the backward pass. The step must still equal compute_gradients + apply_update.
  models::LlamaConfig config;
  config.vocab_size = 32;
  config.hidden_size = 16;
  config.intermediate_size = 24;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 2;
  config.num_key_value_heads = 1;
  const Graph graph = models::training_graph(config, 2, 4);
  const OptimizerSpec spec = OptimizerSpec::adamw(0.01, 0.1);
  Session whole = build_session(graph, {.seed = 3, .optimizer = spec});
  Session split = build_session(graph, {.seed = 3, .optimizer = spec});
  size_t early = 0;
  for (const auto& d : whole.impl().optimizer_dispatches) early += d.after_kernel >= 0 ? 1 : 0;
  EXPECT_GT(early, 0u);
  std::vector<int32_t> ids(8), labels(8);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<int32_t>((5 * i + 3) % 32);
    labels[i] = static_cast<int32_t>((7 * i + 1) % 32);
  }
  for (Session* s : {&whole, &split}) {
    s->set_input("input_ids", std::span<const int32_t>(ids));
    s->set_input("labels", std::span<const int32_t>(labels));
  }
  for (uint32_t step = 0; step < 2; ++step) {
    whole.step();
    split.compute_gradients();
    split.apply_update();
    EXPECT_EQ(split.read_loss(), whole.read_loss()) << "step " << step;
    for (const std::string& name : whole.parameter_names()) {
      EXPECT_EQ(split.read_parameter(name), whole.read_parameter(name)) << name << ", step " << step;
    }
  }
}

TEST(FusedUpdate, EarlyUpdateWaitsForEveryReadOfTheParameter) {
  // Nodes: 0 the parameter, 1 a view of it, 2 its gradient, 3 and 4 other values. Kernels: the
  // gradient's (stage 0), then stages 1 and 2.
  compile::Plan plan;
  plan.storage = {{1, 0, 64}, {1, 16, 16}, {2, 0, 64}, {3, 0, 64}, {3, 64, 64}};
  auto kernel = [](int32_t root, std::vector<int32_t> inputs, bool barrier) {
    compile::Kernel k;
    k.root = root;
    k.inputs = std::move(inputs);
    k.barrier_before = barrier;
    return k;
  };
  plan.kernels = {kernel(2, {3}, false), kernel(3, {4}, true), kernel(4, {3}, false), kernel(3, {4}, true)};
  EXPECT_EQ(runtime::early_update_kernel(plan, 0, 2), 2);  // the end of stage 1
  plan.kernels[3].inputs = {1};  // stage 2 reads the parameter through its view
  EXPECT_EQ(runtime::early_update_kernel(plan, 0, 2), -1);
  plan.kernels[3].inputs = {4};
  plan.kernels[1].inputs = {0};  // stage 1 reads it
  EXPECT_EQ(runtime::early_update_kernel(plan, 0, 2), -1);
  plan.kernels[1].inputs = {4};
  plan.kernels[1].barrier_before = plan.kernels[3].barrier_before = false;  // one stage: nothing after
  EXPECT_EQ(runtime::early_update_kernel(plan, 0, 2), -1);
}

TEST(FusedUpdate, ClippingKeepsEveryUpdateSeparate) {
  OptimizerSpec clipped = OptimizerSpec::sgd(0.1);
  clipped.clip_global_norm = 0.5;
  Session session = build_session(tiny_mlp(4), {.seed = 5, .optimizer = clipped});
  EXPECT_TRUE(session.impl().fused_kernels.empty());
  expect_same_steps(tiny_mlp(4), clipped, "sgd with clipping");
  // A new optimizer without clipping folds the updates in again.
  session.set_optimizer(OptimizerSpec::sgd(0.1));
  EXPECT_FALSE(session.impl().fused_kernels.empty());
}

}  // namespace
}  // namespace meganeura
