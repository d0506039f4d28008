#include "compile/grouping.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "compile/op_kernels.h"
#include "meganeura/error.h"

namespace meganeura::compile {

NodeRole node_role(const Node& node) {
  switch (node.op) {
    case Op::input:
    case Op::parameter:
    case Op::constant:
    case Op::scalar:
      return NodeRole::leaf;
    case Op::reshape:
    case Op::stop_gradient:
      return NodeRole::alias;
    case Op::cast:
      return NodeRole::pointwise;
    case Op::add: case Op::sub: case Op::mul: case Op::div: case Op::neg: case Op::abs: case Op::exp:
    case Op::log: case Op::sqrt: case Op::rsqrt: case Op::recip: case Op::pow: case Op::relu:
    case Op::gelu: case Op::gelu_tanh: case Op::silu: case Op::sigmoid: case Op::tanh: case Op::sin:
    case Op::cos: case Op::maximum: case Op::minimum: case Op::greater: case Op::where: case Op::swiglu:
    case Op::dropout:
      return NodeRole::pointwise;
    case Op::sum: case Op::mean: case Op::max: case Op::argmax: case Op::sum_all: case Op::mean_all:
    case Op::softmax: case Op::log_softmax: case Op::softmax_grad: case Op::log_softmax_grad:
    case Op::layer_norm: case Op::layer_norm_grad: case Op::rms_norm: case Op::rms_norm_grad:
    case Op::cross_entropy_loss: case Op::cross_entropy_grad: case Op::mse_loss: case Op::bce_with_logits:
      return NodeRole::reduction;
    case Op::matmul:
    case Op::linear:
      return NodeRole::matmul;
    case Op::permute: case Op::broadcast_to: case Op::slice: case Op::concat: case Op::embedding:
    case Op::scatter_add_rows:
    case Op::kv_cache_write:
      return NodeRole::gather;
    default:
      break;
  }
  if (has_op_kernel(node.op)) return NodeRole::op_kernel;
  throw Error(std::string("compile: op '") + op_name(node.op) + "' (" + node.name +
              ") has no GPU kernel yet (attention, convolution, pooling, group norm and rope "
              "come with their own kernels); remove it from the graph or use the CPU reference");
}

namespace {

bool is_attention_family(Op op) {
  return op == Op::attention || op == Op::attention_lse || op == Op::attention_grad_q || op == Op::attention_grad_k ||
         op == Op::attention_grad_v;
}

// True when `consumer` reads `producer` only where its kernel can rotate the rows as it loads them:
// an attention kernel's q or k operand, kv_cache_write's update.
bool rotates_on_load(const Node& consumer, int32_t producer) {
  bool any = false;
  for (size_t k = 0; k < consumer.inputs.size(); ++k) {
    if (consumer.inputs[k] != producer) continue;
    const bool operand = is_attention_family(consumer.op) ? k <= 1 : consumer.op == Op::kv_cache_write && k == 1;
    if (!operand) return false;
    any = true;
  }
  return any;
}

}  // namespace

bool merges_heads(const Graph& graph, const Node& node) {
  return node.op == Op::permute && node.shape.size() == 4 && node.attrs.ints == std::vector<int64_t>{0, 2, 1, 3} &&
         !permute_keeps_order(node) && graph.node(node.inputs[0]).dtype == node.dtype;
}

bool splits_heads(const Graph& graph, const Node& node) {
  if (node.op != Op::permute || node.shape.size() != 4 || node.attrs.ints != std::vector<int64_t>{0, 2, 1, 3} ||
      permute_keeps_order(node)) {
    return false;
  }
  const Node& reshape = graph.node(node.inputs[0]);
  return reshape.op == Op::reshape && reshape.shape.size() == 4 && reshape.dtype == node.dtype;
}

namespace {

// The head split a matmul kernel stores through: its root, or the update (under a joined rope) of
// the cache write at its root; -1 for none.
int32_t stored_head_split(const Graph& graph, const Kernel& kernel) {
  if (kernel.archetype != Archetype::matmul || kernel.root == kernel.anchor) return -1;
  int32_t id = kernel.root;
  if (graph.node(id).op == Op::kv_cache_write) {
    id = graph.node(id).inputs[1];
    if (graph.node(id).op == Op::rope && std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), id)) {
      id = graph.node(id).inputs[0];
    }
  }
  return splits_heads(graph, graph.node(id)) ? id : -1;
}

// `int(inK.data[0])` for a kernel input, the literal for a scalar.
std::string int_input_read(const Graph& graph, const Kernel& kernel, int32_t id) {
  if (graph.node(id).op == Op::scalar) return std::to_string(static_cast<int64_t>(graph.node(id).attrs.value));
  const auto it = std::find(kernel.inputs.begin(), kernel.inputs.end(), id);
  if (it == kernel.inputs.end()) throw Error("compile: kernel \"" + kernel.label + "\" does not bind node " + std::to_string(id));
  return "int(in" + std::to_string(it - kernel.inputs.begin()) + ".data[0])";
}

// The store functions of a kernel storing through a head split: element i of the value is
// (a, s, h, d) of the reshape `split` [A, S, H, D]; `prelude` follows the indices, `guard` (if not
// empty) decides whether the element is stored, `destination` is the index of its place.
std::string split_store_functions(const Kernel& kernel, const Shape& split, const std::string& prelude,
                                  const std::string& guard, const std::string& destination) {
  auto u = [](int64_t v) { return std::to_string(v) + "u"; };
  const std::string indices = "  uint d = i % " + u(split[3]) + ", h = (i / " + u(split[3]) + ") % " + u(split[2]) +
                              ";\n  uint s = (i / " + u(split[3] * split[2]) + ") % " + u(split[1]) + ", a = i / " +
                              u(split[3] * split[2] * split[1]) + ";\n" + prelude;
  const std::string store = guard.empty() ? "  " : "  if (" + guard + ") ";
  std::string out = "void store_result(uint i, float v) {\n" + indices + store + "result.data[" + destination + "] = v;\n}\n";
  // Four consecutive elements from a multiple of 4 lie in one row of one head: one index and one
  // 16-byte store (glsl.h: stores_vec4_through_function).
  if (split[3] % 4 == 0) {
    out += "layout(std430, set = 0, binding = " + std::to_string(kernel.inputs.size()) +
           ") writeonly buffer Result4 { vec4 data[]; } result4;\nvoid store_result4(uint i, vec4 v) {\n" + indices +
           store + "result4.data[(" + destination + ") / 4u] = v;\n}\n";
  }
  return out;
}

}  // namespace

int32_t stored_value(const Graph& graph, const Kernel& kernel) {
  const int32_t split = stored_head_split(graph, kernel);
  if (split < 0) return kernel.root;
  return graph.node(graph.node(split).inputs[0]).inputs[0];
}

int32_t rotated_cache_store(const Graph& graph, const Kernel& kernel) {
  if (stored_head_split(graph, kernel) < 0 || graph.node(kernel.root).op != Op::kv_cache_write) return -1;
  const int32_t update = graph.node(kernel.root).inputs[1];
  return graph.node(update).op == Op::rope ? update : -1;
}

std::string head_split_store(const Graph& graph, const Kernel& kernel) {
  const int32_t permute = stored_head_split(graph, kernel);
  if (permute < 0) return "";
  const Shape& split = graph.node(graph.node(permute).inputs[0]).shape;
  auto u = [](int64_t v) { return std::to_string(v) + "u"; };
  const Node& root = graph.node(kernel.root);
  if (root.op != Op::kv_cache_write) {
    // (a, s, h, d) goes to (a, h, s, d) of the permuted result.
    return split_store_functions(kernel, split, "", "",
                                 "((a * " + u(split[2]) + " + h) * " + u(split[1]) + " + s) * " + u(split[3]) + " + d");
  }
  // Into the cache: row offset + s of head (a, h), rows past its end dropped.
  const int64_t capacity = root.shape[2];
  return split_store_functions(
      kernel, split, "  int offset = " + int_input_read(graph, kernel, root.inputs[2]) + ", position = offset + int(s);\n",
      "offset >= 0 && position < " + std::to_string(capacity),
      "((a * " + u(split[2]) + " + h) * " + u(capacity) + " + uint(position)) * " + u(split[3]) + " + d");
}

bool pairs_with(const Graph& graph, const Node& anchor, const Node& candidate) {
  auto plain = [](const Node& n) {
    return n.op == Op::matmul && !n.attrs.transpose_a && n.attrs.transpose_b && n.dtype == DType::f32 &&
           n.shape.size() >= 2 && n.shape[n.shape.size() - 2] >= 16;
  };
  return plain(anchor) && plain(candidate) && anchor.inputs[0] == candidate.inputs[0] &&
         anchor.shape == candidate.shape && graph.node(anchor.inputs[1]).shape.size() == 2 &&
         graph.node(anchor.inputs[1]).shape == graph.node(candidate.inputs[1]).shape &&
         graph.node(anchor.inputs[1]).dtype == graph.node(candidate.inputs[1]).dtype;
}

bool writes_through_attention(const Graph& graph, const Node& consumer, int32_t write) {
  const Node& node = graph.node(write);
  if (node.op != Op::kv_cache_write || consumer.op != Op::attention || consumer.inputs.size() < 4) return false;
  // Read as k or v only, at the write's own offset (the attention's i32 input), one new row for one
  // query (a decode step): every workgroup reading the update derives the new rows itself (the
  // rope included), which for a prefill's 128 rows cost more than the write kernel it saves.
  for (size_t k = 0; k < consumer.inputs.size(); ++k) {
    if (consumer.inputs[k] == write && k != 1 && k != 2) return false;
  }
  const int32_t offset = consumer.inputs.back();
  if (graph.node(offset).dtype != DType::i32 || offset != node.inputs[2]) return false;
  const Shape& update = graph.node(node.inputs[1]).shape;
  const Shape& q = graph.node(consumer.inputs[0]).shape;
  return update.size() == 4 && q.size() == 4 && update[2] == 1 && q[2] == 1 &&
         node.shape == graph.node(consumer.inputs[1]).shape;
}

bool computes_gemv_operand(const Graph& graph, const Node& consumer, int32_t producer) {
  if (consumer.op != Op::matmul && consumer.op != Op::linear) return false;
  const Node& operand = graph.node(producer);
  const bool norm = operand.op == Op::rms_norm;
  if (!norm && node_role(operand) != NodeRole::pointwise) return false;
  if (consumer.inputs[0] != producer || consumer.inputs[1] == producer || operand.dtype != DType::f32) return false;
  if (consumer.attrs.transpose_a || !consumer.attrs.transpose_b || consumer.shape.size() < 2) return false;
  return consumer.shape[consumer.shape.size() - 2] == 1;
}

bool normalizes_product_rows(const Graph& graph, const Node& consumer, int32_t producer) {
  if (consumer.op != Op::matmul && consumer.op != Op::linear) return false;
  const Node& norm = graph.node(producer);
  if (norm.op != Op::rms_norm || norm.dtype != DType::f32 || consumer.dtype != DType::f32) return false;
  if (consumer.inputs[0] != producer || consumer.inputs[1] == producer || consumer.attrs.transpose_a) return false;
  const Shape& weight = graph.node(norm.inputs[1]).shape;
  return norm.shape.size() >= 2 && weight == Shape{norm.shape.back()} && consumer.shape.size() >= 2;
}

namespace {

// Removes the groups marked merged (their nodes now belong to another group), keeping the order.
void drop_merged(std::vector<Group>& groups, const std::vector<bool>& merged) {
  size_t kept = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (merged[g]) continue;
    if (kept != g) groups[kept] = std::move(groups[g]);
    ++kept;
  }
  groups.resize(kept);
}

// attention(q, k, v, [mask], [offset]) and attention_lse(q, k, [mask], [offset]) with equal
// operands and options: the same softmax statistics.
bool same_statistics(const Node& attention, const Node& lse) {
  if (attention.op != Op::attention || lse.op != Op::attention_lse || !(attention.attrs == lse.attrs)) return false;
  if (attention.inputs.size() != lse.inputs.size() + 1) return false;
  if (attention.inputs[0] != lse.inputs[0] || attention.inputs[1] != lse.inputs[1]) return false;
  return std::equal(attention.inputs.begin() + 3, attention.inputs.end(), lse.inputs.begin() + 2);
}

// An attention_lse kernel whose statistics an attention kernel computes anyway becomes that
// kernel's second output (both kernels plain: no fused ropes).
void merge_row_statistics(const Graph& graph, std::vector<Group>& groups) {
  std::map<std::vector<int32_t>, size_t> forward_by_operands;
  for (size_t g = 0; g < groups.size(); ++g) {
    const Node& node = graph.node(groups[g].root);
    if (node.op == Op::attention && groups[g].nodes.size() == 1) forward_by_operands[{node.inputs[0], node.inputs[1]}] = g;
  }
  std::vector<bool> merged(groups.size(), false);
  for (size_t g = 0; g < groups.size(); ++g) {
    const Node& lse = graph.node(groups[g].root);
    if (lse.op != Op::attention_lse || groups[g].nodes.size() != 1) continue;
    const auto it = forward_by_operands.find({lse.inputs[0], lse.inputs[1]});
    if (it == forward_by_operands.end()) continue;
    Group& forward = groups[it->second];
    if (!forward.extra_roots.empty() || !same_statistics(graph.node(forward.root), lse)) continue;
    forward.extra_roots.push_back(groups[g].root);
    forward.nodes.push_back(groups[g].root);
    merged[g] = true;
  }
  drop_merged(groups, merged);
}

// A classifier head (compile/grouping.h): logits = x·Wᵀ (+ b) over at most
// classifier_max_classes classes, their cross-entropy gradient, that gradient's product with the
// same W (with its pointwise epilogue) and the loss become one kernel whose workgroups own whole rows.
void merge_classifier_heads(const Graph& graph, std::vector<Group>& groups) {
  const auto& nodes = graph.nodes();
  std::map<int32_t, size_t> group_of_root;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].extra_roots.empty()) group_of_root[groups[g].root] = g;
  }
  std::vector<bool> merged(groups.size(), false);
  for (size_t g = 0; g < groups.size(); ++g) {
    const Group& grad_group = groups[g];
    const Node& grad = nodes[grad_group.root];
    if (grad.op != Op::cross_entropy_grad || grad_group.nodes.size() != 1 || merged[g]) continue;
    const int32_t logits = grad.inputs[0];
    const auto head_it = group_of_root.find(logits);
    if (head_it == group_of_root.end() || merged[head_it->second]) continue;
    const Group& head_group = groups[head_it->second];
    if (head_group.nodes.size() != 1 || !is_classifier_head(graph, nodes[logits])) continue;
    // The product back through the head: matmul(grad, W) with the head's W, no transposes.
    const int32_t weight = nodes[logits].inputs[1];
    std::optional<size_t> back;
    for (size_t c = 0; c < groups.size(); ++c) {
      const Node& anchor = nodes[groups[c].anchor];
      if (groups[c].archetype != Archetype::matmul || !groups[c].extra_roots.empty() || merged[c]) continue;
      if (anchor.op != Op::matmul || anchor.inputs[0] != grad_group.root || anchor.inputs[1] != weight) continue;
      if (anchor.attrs.transpose_a || anchor.attrs.transpose_b || anchor.dtype != DType::f32) continue;
      back = c;
      break;
    }
    // The loss over the same logits and labels: each workgroup has its rows' log-sum-exp anyway.
    std::optional<size_t> loss;
    for (size_t c = 0; c < groups.size(); ++c) {
      const Node& node = nodes[groups[c].root];
      if (node.op != Op::cross_entropy_loss || groups[c].nodes.size() != 1 || merged[c]) continue;
      if (node.inputs[0] != logits || node.inputs[1] != grad.inputs[1] || node.attrs.ignore_index != grad.attrs.ignore_index) continue;
      loss = c;
      break;
    }
    std::vector<int32_t> members = {logits, grad_group.root};
    if (back) members.insert(members.end(), groups[*back].nodes.begin(), groups[*back].nodes.end());
    if (loss) members.push_back(groups[*loss].root);
    std::sort(members.begin(), members.end());
    // The kernel runs where the head did, so everything else it reads must come before the head
    // (scalars are literals): otherwise that value might itself depend on the logits.
    const std::set<int32_t> inside(members.begin(), members.end());
    bool ordered = true;
    for (int32_t id : members) {
      for (int32_t input : nodes[id].inputs) {
        if (!inside.count(input) && nodes[input].op != Op::scalar && input > logits) ordered = false;
      }
    }
    if (!ordered) continue;
    Group fused;
    fused.archetype = Archetype::classifier;
    fused.anchor = grad_group.root;
    fused.root = back ? groups[*back].root : grad_group.root;
    fused.extra_roots = {logits};
    if (back) fused.extra_roots.push_back(grad_group.root);
    if (loss) fused.extra_roots.push_back(groups[*loss].root);
    fused.nodes = members;
    fused.order = logits;
    merged[head_it->second] = merged[g] = true;
    if (back) merged[*back] = true;
    if (loss) merged[*loss] = true;
    groups.push_back(std::move(fused));
    merged.push_back(false);
  }
  drop_merged(groups, merged);
}

// An output of the graph or a kept value.
bool escapes_directly(const Graph& graph, const std::vector<int32_t>& keep, int32_t id) {
  return std::find(graph.outputs().begin(), graph.outputs().end(), id) != graph.outputs().end() ||
         std::find(keep.begin(), keep.end(), id) != keep.end();
}

// A matmul kernel's result read only through a reshape by a head-splitting permute: the kernel
// stores through the permute (head_split_store), whose own kernel goes. `consumers` are seen
// through aliases; `group_of` maps nodes to their groups.
void store_through_head_splits(const Graph& graph, const std::vector<int32_t>& keep,
                               const std::vector<std::set<int32_t>>& consumers, std::vector<int32_t>& group_of,
                               std::vector<Group>& groups) {
  const auto& nodes = graph.nodes();
  std::vector<bool> merged(groups.size(), false);
  for (Group& group : groups) {
    if (group.archetype != Archetype::matmul || group.partner >= 0 || !group.extra_roots.empty()) continue;
    const int32_t value = group.root;
    if (nodes[value].dtype != DType::f32 || consumers[value].size() != 1 || escapes_directly(graph, keep, value)) {
      continue;
    }
    const int32_t reshape = *consumers[value].begin();
    if (nodes[reshape].op != Op::reshape || escapes_directly(graph, keep, reshape) || consumers[reshape].size() != 1) {
      continue;
    }
    const int32_t permute = *consumers[reshape].begin();
    if (!splits_heads(graph, nodes[permute]) || group_of[permute] < 0) continue;
    const int32_t target = group_of[permute];
    if (groups[target].nodes.size() != 1 || groups[target].root != permute || merged[target]) continue;
    group.nodes.push_back(reshape);
    group.nodes.push_back(permute);
    group.root = permute;
    group_of[permute] = group_of[value];
    merged[target] = true;
  }
  drop_merged(groups, merged);
}

// A cache write of its own kernel whose update is a matmul kernel's head split (under a rope
// joined to the write, where `rotate_in_tiles` allows) joins that kernel as its root (grouping.h).
void store_into_caches(const Graph& graph, const std::vector<int32_t>& keep,
                       const std::vector<std::set<int32_t>>& consumers, std::vector<Group>& groups,
                       bool rotate_in_tiles) {
  const auto& nodes = graph.nodes();
  std::map<int32_t, size_t> rooted;  // root → group
  for (size_t g = 0; g < groups.size(); ++g) rooted[groups[g].root] = g;
  std::vector<bool> merged(groups.size(), false);
  for (size_t w = 0; w < groups.size(); ++w) {
    const Group& writer = groups[w];
    const Node& write = nodes[writer.root];
    if (write.op != Op::kv_cache_write || writer.archetype != Archetype::gather || !writer.extra_roots.empty() ||
        write.dtype != DType::f32) {
      continue;
    }
    int32_t update = write.inputs[1];
    if (std::find(writer.nodes.begin(), writer.nodes.end(), update) != writer.nodes.end()) {
      // A rope joined to the write: its pairs must lie in the product's 64-column tiles, and its
      // vec4s pair whole with their partners'.
      const int64_t width = nodes[update].shape.back();
      if (!rotate_in_tiles || nodes[update].op != Op::rope || width % 8 != 0 || 64 % width != 0) continue;
      update = nodes[update].inputs[0];
    }
    const auto product = rooted.find(update);
    if (product == rooted.end() || merged[product->second] || consumers[update].size() != 1 ||
        escapes_directly(graph, keep, update)) {
      continue;
    }
    Group& target = groups[product->second];
    if (target.archetype != Archetype::matmul || target.anchor == target.root || target.partner >= 0 ||
        !target.extra_roots.empty() || !splits_heads(graph, nodes[update])) {
      continue;
    }
    target.nodes.insert(target.nodes.end(), writer.nodes.begin(), writer.nodes.end());
    target.root = writer.root;
    merged[w] = true;
  }
  drop_merged(groups, merged);
}

}  // namespace

bool is_classifier_head(const Graph& graph, const Node& node) {
  if (node.op != Op::linear && node.op != Op::matmul) return false;
  if (node.attrs.transpose_a || !node.attrs.transpose_b || node.shape.size() != 2 || node.dtype != DType::f32) return false;
  const Node& x = graph.node(node.inputs[0]);
  const Node& w = graph.node(node.inputs[1]);
  if (x.shape.size() != 2 || w.shape.size() != 2 || x.dtype != DType::f32 || w.dtype != DType::f32) return false;
  if (node.op == Op::linear && graph.node(node.inputs[2]).shape != Shape{node.shape[1]}) return false;
  return node.shape[1] <= classifier_max_classes;
}

bool permute_keeps_order(const Node& node) {
  if (node.op != Op::permute) return false;
  int64_t previous = -1;
  for (size_t d = 0; d < node.shape.size(); ++d) {
    if (node.shape[d] == 1) continue;
    if (node.attrs.ints[d] < previous) return false;
    previous = node.attrs.ints[d];
  }
  return true;
}

bool is_alias(const Graph& graph, const Node& node, bool inference) {
  return node.op == Op::reshape || node.op == Op::stop_gradient || (inference && node.op == Op::dropout) ||
         (node.op == Op::cast && graph.node(node.inputs[0]).dtype == node.dtype) || permute_keeps_order(node);
}

std::vector<Group> group_nodes(const Graph& graph, const std::vector<int32_t>& keep, bool fuse, bool inference,
                               bool rotate_in_tiles) {
  const auto& nodes = graph.nodes();
  const int32_t count = static_cast<int32_t>(nodes.size());

  // Nodes needed for the outputs and `keep`.
  std::vector<bool> needed(count, false);
  std::vector<int32_t> stack(graph.outputs().begin(), graph.outputs().end());
  stack.insert(stack.end(), keep.begin(), keep.end());
  while (!stack.empty()) {
    const int32_t id = stack.back();
    stack.pop_back();
    if (needed[id]) continue;
    needed[id] = true;
    // An alias needs only what it aliases (dropout's seed and step are unused at inference).
    if (is_alias(graph, nodes[id], inference)) {
      stack.push_back(nodes[id].inputs[0]);
      continue;
    }
    for (int32_t input : nodes[id].inputs) stack.push_back(input);
  }

  std::vector<NodeRole> role(count, NodeRole::leaf);
  for (int32_t id = 0; id < count; ++id) {
    if (!needed[id]) continue;
    role[id] = is_alias(graph, nodes[id], inference) ? NodeRole::alias : node_role(nodes[id]);
  }

  // Consumers seen through aliases: a value read via a reshape still has that reader.
  std::vector<std::set<int32_t>> consumers(count);
  std::vector<bool> escapes(count, false);  // an output, kept, or read through an alias
  for (int32_t id : graph.outputs()) escapes[id] = true;
  for (int32_t id : keep) escapes[id] = true;
  for (int32_t id = 0; id < count; ++id) {
    if (!needed[id]) continue;
    for (int32_t input : nodes[id].inputs) {
      consumers[input].insert(id);
      if (role[id] == NodeRole::alias) escapes[input] = true;
    }
  }

  // Walk backwards so each consumer's group is known before its producers decide.
  std::vector<int32_t> group_of(count, -1);
  std::vector<Group> groups;
  for (int32_t id = count - 1; id >= 0; --id) {
    if (!needed[id] || role[id] == NodeRole::leaf || role[id] == NodeRole::alias) continue;
    int32_t join = -1;
    bool rope_prologue = false;  // a rope the consumer's kernel applies as it loads its operand
    // A cache write read only by the attention over it: the attention kernel writes the new rows
    // (storing the cache whole, so it may also be an output) and reads them from the update.
    if (fuse && consumers[id].size() == 1 && group_of[*consumers[id].begin()] >= 0 &&
        writes_through_attention(graph, nodes[*consumers[id].begin()], id)) {
      const int32_t target = group_of[*consumers[id].begin()];
      const bool only_writes = std::all_of(groups[target].extra_roots.begin(), groups[target].extra_roots.end(),
                                           [&](int32_t extra) { return nodes[extra].op == Op::kv_cache_write; });
      if (groups[target].anchor == *consumers[id].begin() && only_writes) {
        Group& group = groups[target];
        group.nodes.push_back(id);
        group.extra_roots.push_back(id);
        group_of[id] = target;
        continue;
      }
    }
    // An RMSNorm read only as the left operand of products (a layer's q, k and v; its gate and up)
    // joins each of their kernels: each normalizes the rows it multiplies.
    if (fuse && !escapes[id] && !consumers[id].empty() && nodes[id].op == Op::rms_norm &&
        std::all_of(consumers[id].begin(), consumers[id].end(), [&](int32_t consumer) {
          const int32_t target = group_of[consumer];
          return target >= 0 && groups[target].archetype == Archetype::matmul &&
                 (groups[target].anchor == consumer || groups[target].partner == consumer) &&
                 normalizes_product_rows(graph, nodes[consumer], id);
        })) {
      for (int32_t consumer : consumers[id]) {
        Group& group = groups[group_of[consumer]];
        if (std::find(group.nodes.begin(), group.nodes.end(), id) == group.nodes.end()) group.nodes.push_back(id);
      }
      group_of[id] = group_of[*consumers[id].begin()];
      continue;
    }
    if (fuse && !escapes[id] && consumers[id].size() == 1) {
      const int32_t consumer = *consumers[id].begin();
      const int32_t target = group_of[consumer];
      if (target >= 0) {
        const Group& group = groups[target];
        const bool consumer_pointwise = role[consumer] == NodeRole::pointwise;
        if (role[id] == NodeRole::pointwise) {
          const bool into_pointwise_tree = consumer_pointwise && group.archetype != Archetype::gather;
          const bool into_reduction_prologue =
              group.archetype == Archetype::reduction && (consumer_pointwise || consumer == group.anchor);
          const bool into_gemv_prologue =
              group.anchor == consumer && computes_gemv_operand(graph, nodes[consumer], id);
          if ((into_pointwise_tree && group.archetype != Archetype::reduction) || into_reduction_prologue ||
              into_gemv_prologue) {
            join = target;
          }
        } else if (role[id] == NodeRole::matmul && consumer_pointwise && group.archetype == Archetype::matmul &&
                   group.partner < 0 && nodes[group.root].shape == nodes[id].shape &&
                   pairs_with(graph, nodes[group.anchor], nodes[id])) {
          Group& paired = groups[target];
          paired.nodes.push_back(id);
          paired.partner = id;
          group_of[id] = target;
          continue;
        } else if ((role[id] == NodeRole::matmul || nodes[id].op == Op::group_norm) && consumer_pointwise &&
                   group.archetype == Archetype::pointwise && nodes[group.root].shape == nodes[id].shape &&
                   nodes[id].dtype == DType::f32) {
          join = target;
        } else if (nodes[id].op == Op::rope && (group.anchor == consumer || nodes[consumer].op == Op::kv_cache_write) &&
                   rotates_on_load(nodes[consumer], id)) {
          join = target;
          rope_prologue = true;
        } else if (group.anchor == consumer && computes_gemv_operand(graph, nodes[consumer], id)) {
          join = target;  // a prologue: the matmul stays the anchor
        } else if (nodes[id].op == Op::attention && group.nodes.size() == 1 && group.root == consumer &&
                   merges_heads(graph, nodes[consumer])) {
          join = target;  // the attention stores its rows in the permuted layout; it becomes the anchor
        }
      }
    }
    if (join >= 0) {
      Group& group = groups[join];
      group.nodes.push_back(id);
      if ((role[id] == NodeRole::matmul || role[id] == NodeRole::op_kernel) && !rope_prologue) {
        group.archetype = role[id] == NodeRole::matmul ? Archetype::matmul : op_kernel_archetype(nodes[id].op);
        group.anchor = id;
      }
      group_of[id] = join;
      continue;
    }
    Group group;
    group.root = group.anchor = id;
    group.nodes = {id};
    switch (role[id]) {
      case NodeRole::pointwise: group.archetype = Archetype::pointwise; break;
      case NodeRole::reduction: group.archetype = Archetype::reduction; break;
      case NodeRole::matmul: group.archetype = Archetype::matmul; break;
      case NodeRole::op_kernel: group.archetype = op_kernel_archetype(nodes[id].op); break;
      default: group.archetype = Archetype::gather; break;
    }
    group_of[id] = static_cast<int32_t>(groups.size());
    groups.push_back(std::move(group));
  }
  if (fuse) {
    store_through_head_splits(graph, keep, consumers, group_of, groups);
    store_into_caches(graph, keep, consumers, groups, rotate_in_tiles);
    merge_row_statistics(graph, groups);
    merge_classifier_heads(graph, groups);
  }
  for (Group& group : groups) std::sort(group.nodes.begin(), group.nodes.end());
  std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.position() < b.position(); });
  return groups;
}

}  // namespace meganeura::compile
