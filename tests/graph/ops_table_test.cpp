#include <gtest/gtest.h>

#include <set>

#include "meganeura/graph.h"

using namespace meganeura;

TEST(OpsTable, NamesAreUniqueAndRoundTrip) {
  std::set<std::string> names;
  for (Op op : all_ops()) {
    EXPECT_TRUE(names.insert(op_name(op)).second) << op_name(op);
    EXPECT_EQ(op_from_name(op_name(op)), op);
  }
  EXPECT_EQ(names.size(), kNumOps);
  EXPECT_FALSE(op_from_name("no_such_op").has_value());
}

TEST(OpsTable, ArityAndCategory) {
  EXPECT_EQ(op_arity(Op::matmul), 2);
  EXPECT_EQ(op_arity(Op::where), 3);
  EXPECT_EQ(op_arity(Op::concat), -1);
  EXPECT_EQ(op_arity(Op::input), 0);
  EXPECT_EQ(op_category(Op::add), OpCategory::pointwise);
  EXPECT_EQ(op_category(Op::linear), OpCategory::matmul);
  EXPECT_EQ(op_category(Op::attention_grad_k), OpCategory::attention);
  EXPECT_EQ(op_category(Op::conv2d_grad_weight), OpCategory::conv);
  EXPECT_EQ(op_category(Op::cross_entropy_loss), OpCategory::loss);
  EXPECT_STREQ(category_name(OpCategory::movement), "movement");
}

TEST(OpsTable, IssueOpsAllPresent) {
  for (const char* name :
       {"add", "sub", "mul", "div", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "recip", "pow", "relu", "gelu",
        "gelu_tanh", "silu", "sigmoid", "tanh", "sin", "cos", "maximum", "minimum", "greater", "where", "cast", "sum",
        "mean", "max", "argmax", "sum_all", "mean_all", "reshape", "permute", "broadcast_to", "slice", "concat",
        "embedding", "scatter_add_rows", "matmul", "softmax", "log_softmax", "layer_norm", "rms_norm", "group_norm",
        "rope", "attention", "swiglu", "conv2d", "upsample_nearest2x", "avg_pool2d", "max_pool2d", "global_avg_pool",
        "dropout", "cross_entropy_loss", "mse_loss", "bce_with_logits", "stop_gradient", "linear",
        "attention_grad_q", "attention_grad_k", "attention_grad_v", "conv2d_grad_input", "conv2d_grad_weight",
        "max_pool2d_grad", "rms_norm_grad", "layer_norm_grad", "group_norm_grad", "rope_grad", "softmax_grad",
        "log_softmax_grad", "cross_entropy_grad"}) {
    EXPECT_TRUE(op_from_name(name).has_value()) << name;
  }
}

TEST(Attrs, EqualityAndHashFollowEveryField) {
  Attrs a, b;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.hash(), b.hash());
  b.ints = {1, 2};
  EXPECT_NE(a, b);
  EXPECT_NE(a.hash(), b.hash());
  a.ints = {1, 2};
  a.eps = 1e-5;
  EXPECT_NE(a, b);
  EXPECT_NE(a.hash(), b.hash());
  b.eps = 1e-5;
  EXPECT_EQ(a.hash(), b.hash());
  a.scale = -0.0;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.hash(), b.hash());
  a.causal = true;
  EXPECT_NE(a.hash(), b.hash());
}

TEST(Attrs, ToStringListsOnlyNonDefaults) {
  Attrs a;
  EXPECT_EQ(a.to_string(), "");
  a.axis = 1;
  a.keepdim = true;
  a.ints = {2, 3};
  a.dtype = DType::f16;
  EXPECT_EQ(a.to_string(), "axis=1 keepdim=true dtype=f16 ints=[2, 3]");
}

TEST(DTypes, NamesAndSizes) {
  EXPECT_STREQ(dtype_name(DType::bf16), "bf16");
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(num_elements({}), 1);
  EXPECT_EQ(num_elements({2, 0, 3}), 0);
}
