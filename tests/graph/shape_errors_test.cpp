// Shape mismatches throw meganeura::Error naming the op, the operand shapes and the rule violated.
#include <gtest/gtest.h>

#include <functional>

#include "meganeura/graph.h"

using namespace meganeura;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR(statement, part)                              \
  do {                                                             \
    const std::string message = error_of([&] { statement; });      \
    EXPECT_NE(message.find(part), std::string::npos) << message;   \
  } while (0)

}  // namespace

TEST(ShapeErrors, Elementwise) {
  Graph g;
  Tensor a = g.input("a", {2, 3}), b = g.input("b", {4}), i = g.input("i", {2, 3}, DType::i32);
  EXPECT_ERROR(g.add(a, b), "add: shapes [2, 3] and [4] do not broadcast");
  EXPECT_ERROR(a * i, "mul: operands must share a dtype, got f32 [2, 3] and i32 [2, 3] (use cast)");
  EXPECT_ERROR(g.exp(i), "exp: x [2, 3] must be a float tensor, got i32");
  EXPECT_ERROR(g.swiglu(a, g.input("c", {3})), "swiglu: gate [2, 3] and up [3] must have the same shape");
  EXPECT_ERROR(g.where(a, a, b), "where: shapes [2, 3] and [4] do not broadcast");
  Tensor seed = g.input("seed", {2}, DType::i32);
  EXPECT_ERROR(g.dropout(a, seed, seed, 0.1), "dropout: seed must be an i32 of shape [] or [1], got i32 [2]");
  Tensor s = g.input("s", {1}, DType::i32);
  EXPECT_ERROR(g.dropout(a, s, s, 1.0), "dropout: p must be in [0, 1)");
}

TEST(ShapeErrors, ReductionsAndMovement) {
  Graph g;
  Tensor x = g.input("x", {2, 3, 4});
  EXPECT_ERROR(g.sum(x, 3), "sum: axis 3 is out of range for a tensor of rank 3");
  EXPECT_ERROR(g.max(x, -4), "max: axis -4 is out of range");
  EXPECT_ERROR(g.reshape(x, {5, 5}), "reshape: element counts differ: [2, 3, 4] has 24, target [5, 5] has 25");
  EXPECT_ERROR(g.reshape(x, {-1, -1}), "at most one -1");
  EXPECT_ERROR(g.reshape(x, {5, -1}), "cannot infer the -1 in [5, -1] from [2, 3, 4]");
  EXPECT_ERROR(g.permute(x, {0, 0, 1}), "permute: perm [0, 0, 1] is not a permutation of the axes of [2, 3, 4]");
  EXPECT_ERROR(g.permute(x, {0, 1}), "must list each of the 3 axes");
  EXPECT_ERROR(g.broadcast_to(x, {2, 5, 4}), "broadcast_to: [2, 3, 4] cannot broadcast to [2, 5, 4]");
  EXPECT_ERROR(g.broadcast_to(x, {3, 4}), "cannot broadcast to [3, 4]");
  EXPECT_ERROR(g.slice(x, 1, 2, 4), "slice: range [2, 4) is not within axis 1 of [2, 3, 4] (need 0 <= begin <= end <= 3)");
  EXPECT_ERROR(g.concat({x, g.input("y", {2, 2, 3})}, 1),
               "concat: shapes [2, 3, 4], [2, 2, 3] must agree on every dim except axis 1");
  EXPECT_ERROR(g.concat({}, 0), "concat: no tensors given");
  Tensor table = g.input("table", {5, 3});
  EXPECT_ERROR(g.embedding(table, x), "embedding: ids must be i32, got f32");
  EXPECT_ERROR(g.embedding(x, g.input("ids", {2}, DType::i32)), "embedding: table [V, D] must have rank 2, got [2, 3, 4]");
  Tensor ids = g.input("ids2", {2, 2}, DType::i32);
  EXPECT_ERROR(g.scatter_add_rows(x, ids, 5), "scatter_add_rows: src [2, 3, 4] must be ids [2, 2] + [D]");
  Tensor cache = g.input("cache", {1, 2, 4, 3}), off = g.input("off", {}, DType::i32);
  EXPECT_ERROR(g.kv_cache_write(cache, g.input("u", {1, 2, 5, 3}), off),
               "kv_cache_write: update [1, 2, 5, 3] must match cache [1, 2, 4, 3]");
}

TEST(ShapeErrors, Matmul) {
  Graph g;
  Tensor a = g.input("a", {4, 3}), b = g.input("b", {5, 2});
  EXPECT_ERROR(g.matmul(a, b), "matmul: inner dimensions differ: a [4, 3] (k=3) vs b [5, 2] (k=5)");
  EXPECT_ERROR(g.matmul(a, b, false, true), "(k=3) vs b [5, 2] (k=2) with transpose_a=false transpose_b=true");
  EXPECT_ERROR(g.matmul(g.input("v", {3}), b), "matmul: a must have rank >= 2, got [3]");
  Tensor batched_a = g.input("ba", {2, 4, 3}), batched_b = g.input("bb", {3, 3, 5});
  EXPECT_ERROR(g.matmul(batched_a, batched_b), "matmul: shapes [2] and [3] do not broadcast");
  EXPECT_EQ(g.matmul(batched_a, g.input("bc", {1, 3, 5})).shape(), (Shape{2, 4, 5}));
  Tensor w = g.input("w", {6, 3});
  EXPECT_ERROR(g.linear(a, w, g.input("bias", {3})), "linear: bias must be [6] (the output features), got [3]");
}

TEST(ShapeErrors, Attention) {
  Graph g;
  Tensor q = g.input("q", {1, 4, 3, 8}), k = g.input("k", {1, 3, 5, 8}), v = g.input("v", {1, 3, 5, 8});
  EXPECT_ERROR(g.attention(q, k, v),
               "attention: query heads must be a multiple of kv heads: q [1, 4, 3, 8] (Hq=4) vs k [1, 3, 5, 8] (Hkv=3)");
  Tensor k2 = g.input("k2", {1, 2, 5, 4}), v2 = g.input("v2", {1, 2, 5, 4});
  EXPECT_ERROR(g.attention(q, k2, v2), "attention: head dims differ: q [1, 4, 3, 8] (D=8) vs k [1, 2, 5, 4]");
  Tensor k3 = g.input("k3", {1, 2, 5, 8}), v3 = g.input("v3", {1, 2, 5, 8});
  EXPECT_ERROR(g.attention(q, k3, v3, {}, g.input("m", {4, 5})),
               "attention: mask [4, 5] does not broadcast to the scores [1, 4, 3, 5] [B, Hq, S, Skv]");
  Tensor short_k = g.input("k4", {1, 2, 2, 8}), short_v = g.input("v4", {1, 2, 2, 8});
  EXPECT_ERROR(g.attention(q, short_k, short_v, {.causal = true}), "causal attention without a position offset needs S <= Skv");
  Tensor off = g.input("off", {1}, DType::i32);
  EXPECT_EQ(g.attention(q, short_k, short_v, {.causal = true}, std::nullopt, off).shape(), (Shape{1, 4, 3, 8}));
  EXPECT_ERROR(g.attention(g.input("q3", {4, 3, 8}), k3, v3), "attention: q [B, Hq, S, D] must have rank 4, got [4, 3, 8]");
  Tensor out = g.attention(q, k3, v3);
  Tensor lse = g.attention_lse(q, k3);
  EXPECT_EQ(lse.shape(), (Shape{1, 4, 3}));
  EXPECT_ERROR(g.attention_grad_q(q, k3, v3, out, g.input("dout", {1, 4, 3, 7}), lse),
               "attention_grad_q: out [1, 4, 3, 8] and dout [1, 4, 3, 7] must be [1, 4, 3, 8]");
  EXPECT_ERROR(g.attention_grad_k(q, k3, v3, out, out, g.input("l", {1, 4, 5})),
               "attention_grad_k: lse [1, 4, 5] f32 must be f32 [1, 4, 3] [B, Hq, S]");
}

TEST(ShapeErrors, ConvAndPooling) {
  Graph g;
  Tensor x = g.input("x", {1, 4, 8, 8}), w = g.input("w", {6, 3, 3, 3});
  EXPECT_ERROR(g.conv2d(x, w), "conv2d: input channels differ: input [1, 4, 8, 8] has C=4 but weight [6, 3, 3, 3]");
  EXPECT_ERROR(g.conv2d(x, g.input("w2", {6, 2, 3, 3}), {.groups = 4}), "channels must divide by groups=4");
  EXPECT_ERROR(g.conv2d(x, g.input("w3", {6, 4, 9, 3})), "conv2d: window of span 9 does not fit the padded height 8 + 2*0");
  EXPECT_ERROR(g.conv2d(x, g.input("w4", {6, 4, 3, 3}), {.stride = {0, 1}}), "kernel, stride and dilation must be positive");
  EXPECT_EQ(g.conv2d(x, g.input("w5", {6, 2, 3, 3}), {.stride = {2, 2}, .padding = {1, 1}, .groups = 2}).shape(),
            (Shape{1, 6, 4, 4}));
  EXPECT_ERROR(g.conv2d_grad_input(g.input("dy", {1, 6, 5, 5}), g.input("w6", {6, 4, 3, 3}), {}, {8, 8}),
               "conv2d_grad_input: dy [1, 6, 5, 5] is not the conv2d output [1, 6, 6, 6] of input [1, 4, 8, 8]");
  EXPECT_ERROR(g.max_pool2d(x, {.kernel = {2, 2}, .stride = {2, 2}, .padding = {2, 0}}),
               "max_pool2d: padding must be at most half the kernel");
  EXPECT_ERROR(g.max_pool2d_grad(x, g.input("dp", {1, 4, 3, 3})),
               "max_pool2d_grad: dy [1, 4, 3, 3] is not the pooled shape [1, 4, 4, 4] of input [1, 4, 8, 8]");
  EXPECT_ERROR(g.upsample_nearest2x_grad(g.input("du", {1, 1, 3, 4})), "must have even height and width");
  EXPECT_ERROR(g.global_avg_pool(g.input("flat", {4, 8})), "global_avg_pool: input [N, C, H, W] must have rank 4, got [4, 8]");
}

TEST(ShapeErrors, NormsRopeAndLosses) {
  Graph g;
  Tensor x = g.input("x", {2, 3, 4});
  EXPECT_ERROR(g.rms_norm(x, g.input("w", {3})), "rms_norm: weight must be [4] to match x [2, 3, 4], got [3]");
  EXPECT_ERROR(g.layer_norm(x, g.input("w2", {4}), g.input("b2", {2})), "layer_norm: bias must be [4]");
  EXPECT_ERROR(g.group_norm(x, g.input("w3", {3}), g.input("b3", {3}), 2),
               "group_norm: channels C=3 of x [2, 3, 4] must divide by groups=2");
  Tensor off = g.input("off", {1}, DType::i32);
  EXPECT_ERROR(g.rope(g.input("odd", {1, 2, 3, 5}), off), "rope: head dim D of [1, 2, 3, 5] must be even");
  EXPECT_ERROR(g.rope(x, g.input("foff", {1})), "rope: position offset must be an i32 of shape [] or [1], got f32 [1]");
  Tensor logits = g.input("logits", {4, 3});
  EXPECT_ERROR(g.cross_entropy_loss(logits, g.input("labels", {3}, DType::i32)),
               "cross_entropy_loss: integer labels must be [N] = [4] for logits [4, 3], got [3]");
  EXPECT_ERROR(g.cross_entropy_loss(logits, g.input("probs", {4, 4})),
               "cross_entropy_loss: probability labels [4, 4] must match logits [4, 3]");
  EXPECT_ERROR(g.cross_entropy_loss(x, g.input("l2", {2}, DType::i32)), "logits [N, C] must have rank 2");
  EXPECT_ERROR(g.mse_loss(logits, g.input("t", {4, 1})), "mse_loss: prediction [4, 3] and target [4, 1] must have the same shape");
  EXPECT_ERROR(g.softmax_grad(logits, x), "softmax_grad: y [4, 3] and dy [2, 3, 4] must have the same shape");
}
