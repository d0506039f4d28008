// Updates folded into the kernels that compute the gradients (runtime/fused_update.h): the whole
// step must leave parameters, gradients and optimizer state exactly as compute_gradients followed by
// apply_update (the separate update kernels) does; parameters read after their gradient's stage,
// clipping and optimizers with state keep the separate update.
#include <random>

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
