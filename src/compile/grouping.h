// Kernel grouping: which graph nodes run together in one kernel. Pure structure; compile.cpp
// turns the groups into kernels with storage and dispatch sizes.
//
//   std::vector<compile::Group> groups = compile::group_nodes(graph, /*fuse=*/true);
//   // matmul → add(bias) → relu becomes one group anchored at the matmul.
//
// Rules (each producer has exactly one consumer and is not a graph output):
// - a pointwise node joins its consumer's group when that consumer is pointwise, or is the anchor of
//   a reduction (a prologue: sum(x * x) reads x * x as it goes);
// - a matmul joins its pointwise consumer's group when the group's root has the matmul's shape and
//   no reduction or other matmul is in it (an epilogue: bias, activation, residual); so does a
//   group norm (GroupNorm → SiLU in a UNet block is one kernel);
// - a rope joins the kernel of its consumer when that consumer reads it only as an attention-family
//   kernel's q or k operand, or as kv_cache_write's update: the kernel rotates each row as it loads
//   it (a decode step's rope(k) → cache write is one dispatch). Anchor and archetype stay the
//   consumer's. In training the rope'd q and k also feed the backward, so they keep their own kernel.
// - a kv_cache_write of one row read only by an attention of one query (a decode step; as its k or
//   v, at the write's offset) joins the attention kernel as an extra root: the kernel reads the
//   older rows from the cache, the new row from the update (rotating it if the rope joined the
//   write), and its first workgroup of each kv head stores the row in the cache. A decode step's
//   cache writes need no kernel and no stage of their own. The cache may be an output.
// - an attention read only by a permute that merges its heads (merges_heads) joins that permute's
//   kernel as its anchor: it stores each row where the permute would put it.
// - a matmul read only by the epilogue of another matmul's kernel, over the same left operand with
//   weights of the same shape (pairs_with: an MLP's gate beside its up product, joined by a SwiGLU),
//   joins that kernel as its partner: one workgroup multiplies the shared rows by both weights
//   and the epilogue sees both products (codegen/matmul_paired.cpp). A prefill layer's gate no
//   longer needs a kernel, a stage and a buffer of its own.
// - an RMSNorm read only as the rows of products joins every one of their kernels, which
//   normalize the rows they multiply (normalizes_product_rows): a layer's q, k and v products, its
//   paired gate and up. The one rule under which a node belongs to more than one group.
// - a permute that splits heads ([B, S, H·D] reshaped to [B, S, H, D], permuted to [B, H, S, D]:
//   splits_heads) of a matmul kernel's result read by nothing else joins that kernel as its root,
//   the reshape with it: the kernel stores each output where the permute would put it
//   (head_split_store). A prefill layer's q, k and v head splits need no kernels and no stage.
// - a kv_cache_write (of its own kernel) whose update is such a kernel's head split, read by
//   nothing else, joins that kernel as its root: the product stores each row straight into the
//   cache at the write's offset (head_split_store). So does a write of rope(head split), the rope
//   joined too, where the device allows (group_nodes' `rotate_in_tiles`: the kernel must take 64×64
//   tiles) and the rope's pairs lie in one tile (rotated_cache_store): the kernel rotates its tile
//   through shared memory before storing it (codegen/matmul_wide.cpp). A prefill layer's k and v
//   cache writes need no kernels and no stage: its q, k and v products are its whole first stage.
// Reshape, stop_gradient and same-type casts are aliases (no group); so is dropout at inference.
// One rule gives a kernel a second output: an attention_lse over the same q, k, mask, offset and
// options as an attention (the gradient rule emits it for the backward) is written by that
// attention's kernel — the forward keeps its row log-sum-exp instead of a second pass over QKᵀ.
// Another makes a training step's classifier head one kernel (Archetype::classifier): logits =
// x·Wᵀ (+ b) over at most classifier_max_classes classes (is_classifier_head), their
// cross_entropy_grad, and, when present, matmul(that gradient, W) with its pointwise epilogue (the
// gradient back into x, times the activation's mask) and the cross_entropy_loss of the same logits
// and labels. Each workgroup owns whole rows, so the softmax of a row and the product back need
// neither a kernel nor a barrier of their own: an MLP step's head, loss gradient and first backward
// product were three stages. The kernel stores the logits, their gradient and the loss (extra
// outputs, in that order) beside its root, and runs where the head would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compile/plan.h"
#include "meganeura/graph.h"

namespace meganeura::compile {

// op_kernel: attention, convolution, pooling, group norm, rope (compile/op_kernels.h); only group
// norm takes a pointwise epilogue, and only rope joins a consumer (see the rules above).
enum class NodeRole : uint8_t { leaf, alias, pointwise, reduction, matmul, gather, op_kernel };

// Throws meganeura::Error naming the op for ops that have no kernel yet.
NodeRole node_role(const Node& node);

struct Group {
  Archetype archetype = Archetype::pointwise;
  int32_t root = -1;
  int32_t anchor = -1;
  std::vector<int32_t> nodes;  // ascending
  std::vector<int32_t> extra_roots;  // further values the kernel stores (the attention's lse)
  int32_t order = -1;  // the node id the group's kernel is ordered by when not its root's
  int32_t partner = -1;  // a paired product's second matmul (pairs_with), read by the epilogue only
  int32_t position() const { return order >= 0 ? order : root; }
};

// Groups in an order that respects dependencies (ascending root id). Only nodes the outputs (and
// `keep`) depend on are scheduled.
// `rotate_in_tiles`: the device runs the 64×64-tile matmul form with the shared memory of
// rotated_cache_store_bytes, so a rope'd cache write may join its product (see the rules above).
std::vector<Group> group_nodes(const Graph& graph, const std::vector<int32_t>& keep, bool fuse, bool inference = false,
                               bool rotate_in_tiles = false);

// A one-row product with weights stored [N, K] (the GEMV form) whose left operand is an RMSNorm or
// a pointwise op read by nothing else computes that operand as it loads the row: every column's
// invocations read the whole row anyway, so for a norm each also sums its squares, and a pointwise
// op (a SwiGLU) is evaluated per element. A decode step's norms and SwiGLUs need no kernels.
bool computes_gemv_operand(const Graph& graph, const Node& consumer, int32_t producer);

// Whether `consumer` (a matmul or linear, any number of rows, A not transposed) can normalize the
// rows of its left operand `producer`, an f32 RMSNorm over the last axis: with the norm's weight
// folded into the loads of B, the norm's row scale factors out of every output's sum, so the
// kernel sums the squares of the rows it loads and scales its outputs by 1/rms (split-K parts
// add their squares with their partial sums). An RMSNorm read only so (by any number of products:
// a layer's q, k and v) joins each of their kernels and needs no kernel, stage or buffer of its
// own. Training reads the norm in the backward as well, so there it keeps its kernel.
bool normalizes_product_rows(const Graph& graph, const Node& consumer, int32_t producer);

// A product that can head a classifier kernel: [M, K] times W [C, K] transposed (matmul, or linear
// with a bias of C), f32, with C ≤ classifier_max_classes (each invocation keeps C partial sums per
// row of its workgroup, and the workgroup sums them in shared memory).
constexpr int64_t classifier_max_classes = 15;
bool is_classifier_head(const Graph& graph, const Node& node);

// A permute [B, H, S, D] -> [B, S, H, D] that moves elements (S > 1): an attention read only by it
// stores its rows in that order (the heads merged back for the output projection), one kernel and
// one stage fewer per layer of a prefill.
bool merges_heads(const Graph& graph, const Node& node);

// A permute {0, 2, 1, 3} of a rank-4 reshape of its input that moves elements: the head split
// [B, S, H, D] -> [B, H, S, D] of an attention's q, k or v.
bool splits_heads(const Graph& graph, const Node& node);

// The value a kernel computes before it is stored: its root, or for a matmul kernel that stores
// through a head split (see the rules above) the root's input under its reshape.
int32_t stored_value(const Graph& graph, const Kernel& kernel);

// GLSL `void store_result(uint i, float v)` storing element i of the value of a matmul kernel that
// stores through a head split at its place in the permuted result, or, where a cache write joined
// the kernel, at its place in the cache (rows from the write's offset, those past the cache's end
// dropped, as kv_cache_write drops them); "" for other kernels.
std::string head_split_store(const Graph& graph, const Kernel& kernel);

// The rope of a matmul kernel that rotates its head-split rows before they go into a cache (see the
// rules above), else -1. Such a kernel takes the 64×64-tile form (compile sets it), whose column
// tiles hold whole heads.
int32_t rotated_cache_store(const Graph& graph, const Kernel& kernel);

// Shared memory a rotating product adds to its 64×64-tile form: the tile it rotates.
constexpr uint64_t rotated_cache_store_bytes = 64 * 64 * 4;

// Whether `candidate` can be the partner of the product `anchor`: both f32 matmuls of the same left
// operand (not transposed, at least 16 rows) with weights stored [N, K] of one shape.
bool pairs_with(const Graph& graph, const Node& anchor, const Node& candidate);

// Whether `write` (a kv_cache_write) can join the attention `consumer` (see the rules above).
bool writes_through_attention(const Graph& graph, const Node& consumer, int32_t write);

// True for nodes that share their first input's storage instead of computing anything: reshapes,
// same-type casts, stop_gradient, inference dropout, and permutes that keep the elements' order
// (permute_keeps_order).
bool is_alias(const Graph& graph, const Node& node, bool inference);

// A permute whose axes longer than 1 stay in their order moves no element: a decode step's head
// split [1, 1, H, D] -> [1, H, 1, D] and its merge back.
bool permute_keeps_order(const Node& node);

}  // namespace meganeura::compile
