// A classifier head, its cross-entropy gradient and the product back through the head become one
// kernel (compile/grouping.h), without a GPU: when it applies, what the kernel stores and where it
// runs, and the near misses that keep their kernels.
#include <gtest/gtest.h>

#include <algorithm>

#include "compile/plan.h"

namespace meganeura::compile {
namespace {

// The training step of relu(x·W1ᵀ) → head as differentiate writes it: the loss, its gradient, the
// product back through the head times the activation's mask, and the weight gradients.
struct Head {
  Graph g;
  Tensor x, labels, w1, hidden, w, b, logits, loss, grad, back, masked;
  explicit Head(int64_t classes, bool with_bias = true, bool back_through_other_weight = false) {
    x = g.input("x", {32, 24});
    labels = g.input("labels", {32}, DType::i32);
    w1 = g.parameter("fc1.weight", {16, 24});
    w = g.parameter("head.weight", {classes, 16});
    b = g.parameter("head.bias", {classes});
    hidden = g.relu(g.matmul(x, w1, false, true));
    logits = with_bias ? g.linear(hidden, w, b) : g.matmul(hidden, w, false, true);
    loss = g.cross_entropy_loss(logits, labels);
    grad = g.cross_entropy_grad(logits, labels, g.scalar(1.0));
    Tensor other = g.parameter("other.weight", {classes, 16});
    back = g.matmul(grad, back_through_other_weight ? other : w);
    masked = g.mul(back, g.greater(hidden, g.scalar(0.0)));
    Tensor dw = g.matmul(grad, hidden, true, false);
    Tensor dw1 = g.matmul(masked, x, true, false);
    g.set_name(dw, "grad/head.weight");
    g.set_name(dw1, "grad/fc1.weight");
    g.set_outputs({loss, dw, dw1});
  }
};

CompileOptions training() {
  CompileOptions options;
  options.purpose = Purpose::training;
  return options;
}

const Kernel* find_kernel(const Plan& plan, Archetype archetype) {
  const auto it = std::find_if(plan.kernels.begin(), plan.kernels.end(),
                               [&](const Kernel& k) { return k.archetype == archetype; });
  return it == plan.kernels.end() ? nullptr : &*it;
}

TEST(ClassifierGrouping, HeadLossGradientAndProductBackAreOneKernel) {
  Head h(10);
  const Plan plan = compile(h.g, DeviceCaps::lavapipe_like(), training());
  const Kernel* kernel = find_kernel(plan, Archetype::classifier);
  ASSERT_NE(kernel, nullptr) << plan.summary();
  EXPECT_EQ(kernel->label, "linear+cross_entropy_loss+cross_entropy_grad+matmul+greater+mul");
  EXPECT_EQ(kernel->anchor, h.grad.id);
  EXPECT_EQ(kernel->root, h.masked.id);
  EXPECT_EQ(kernel->extra_outputs, (std::vector<int32_t>{h.logits.id, h.grad.id, h.loss.id}));
  EXPECT_EQ(kernel->register_tile[0], 1u);  // 32 rows: a workgroup each
  EXPECT_EQ(kernel->workgroups[0], 32u);
  EXPECT_EQ(kernel->arrival_counters, 1u);  // the last workgroup adds up the rows' losses
  EXPECT_EQ(kernel->partial_floats, 2u * 32);
  // hidden (the head's operand and the mask), labels, head weight, head bias; scalars are literals.
  EXPECT_EQ(kernel->inputs.size(), 4u);
  // fc1 | classifier | the weight gradients: the head, the loss and its gradient, and the product
  // back were three stages.
  ASSERT_EQ(plan.kernels.size(), 4u) << plan.summary();
  EXPECT_EQ(&plan.kernels[1], kernel);
  EXPECT_EQ(plan.barrier_count(), 2u) << plan.summary();

  CompileOptions unfused = training();
  unfused.fuse = false;
  EXPECT_EQ(find_kernel(compile(h.g, DeviceCaps::lavapipe_like(), unfused), Archetype::classifier), nullptr);
}

TEST(ClassifierGrouping, ManyRowsShareAWorkgroup) {
  Graph g;
  Tensor hidden = g.input("h", {300, 16});
  Tensor labels = g.input("labels", {300}, DType::i32);
  Tensor w = g.parameter("w", {3, 16});
  Tensor grad = g.cross_entropy_grad(g.matmul(hidden, w, false, true), labels, g.scalar(1.0));
  g.set_outputs({grad});
  const Plan plan = compile(g, DeviceCaps::lavapipe_like(), training());
  const Kernel* kernel = find_kernel(plan, Archetype::classifier);
  ASSERT_NE(kernel, nullptr) << plan.summary();
  EXPECT_EQ(kernel->root, grad.id);  // no product back: the gradient is the root
  EXPECT_EQ(kernel->register_tile[0], 2u);
  EXPECT_EQ(kernel->workgroups[0], 150u);
  EXPECT_EQ(plan.kernels.size(), 1u);
}

TEST(ClassifierGrouping, NearMissesKeepTheirKernels) {
  {
    Head h(16);  // more classes than an invocation keeps partial sums for
    const Plan plan = compile(h.g, DeviceCaps::lavapipe_like(), training());
    EXPECT_EQ(find_kernel(plan, Archetype::classifier), nullptr) << plan.summary();
  }
  {
    Head h(10, /*with_bias=*/false, /*back_through_other_weight=*/true);
    const Plan plan = compile(h.g, DeviceCaps::lavapipe_like(), training());
    const Kernel* kernel = find_kernel(plan, Archetype::classifier);
    ASSERT_NE(kernel, nullptr) << plan.summary();
    EXPECT_EQ(kernel->label, "matmul+cross_entropy_loss+cross_entropy_grad");  // the product back uses another weight
    EXPECT_EQ(kernel->root, h.grad.id);
  }
  {
    // Logits from W stored [16, C] (no transpose): not a head this kernel reads.
    Graph g;
    Tensor hidden = g.input("h", {8, 16});
    Tensor labels = g.input("labels", {8}, DType::i32);
    Tensor w = g.parameter("w", {16, 4});
    g.set_outputs({g.cross_entropy_grad(g.matmul(hidden, w), labels, g.scalar(1.0))});
    EXPECT_EQ(find_kernel(compile(g, DeviceCaps::lavapipe_like()), Archetype::classifier), nullptr);
  }
  {
    // The loss gradient's seed computed from the logits themselves: the kernel could not run
    // where the head does.
    Graph g;
    Tensor hidden = g.input("h", {8, 16});
    Tensor labels = g.input("labels", {8}, DType::i32);
    Tensor w = g.parameter("w", {4, 16});
    Tensor logits = g.matmul(hidden, w, false, true);
    g.set_outputs({g.cross_entropy_grad(logits, labels, g.sum_all(logits))});
    EXPECT_EQ(find_kernel(compile(g, DeviceCaps::lavapipe_like()), Archetype::classifier), nullptr);
  }
}

}  // namespace
}  // namespace meganeura::compile
