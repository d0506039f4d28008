// compile::Plan — a graph turned into GPU work: the buffers it needs, the kernels (each a group of
// fused graph nodes) with their bindings and dispatch sizes, and where barriers go.
//
//   compile::Plan plan = compile::compile(graph, caps, {.purpose = compile::Purpose::training});
//   for (const compile::Kernel& k : plan.kernels)
//     std::cout << (k.barrier_before ? "| " : "  ") << k.label << "\n";
//   plan.arena_bytes;   // intermediates, shared by liveness
//
// Buffers: every input, parameter, constant and graph output has a buffer of its own (they outlive
// one step); other intermediates are slices of one arena placed by compile/memory_plan.h. Movement
// ops that do not move data (reshape, stop_gradient, same-type cast, a slice that is one aligned
// contiguous run of a computed value) are aliases, not kernels.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "compile/device_caps.h"
#include "meganeura/graph.h"

namespace meganeura::compile {

// derived: an inference value computed from parameters and constants alone (compile's `refresh` kernels).
// workspace: kernels' own bookkeeping that outlives a step (arrival counters), zero at
// creation and left zero by every kernel that uses it.
enum class BufferKind : uint8_t { input, parameter, constant, output, state, arena, derived, workspace };
const char* buffer_kind_name(BufferKind kind);

struct PlanBuffer {
  BufferKind kind = BufferKind::arena;
  std::string name;     // inputs, parameters, outputs: the node's name ("" for the arena)
  int32_t node = -1;    // the node whose value it holds (-1 for the arena)
  uint64_t bytes = 0;
};

// How a buffer holds its elements: 4 bytes each (f32 or i32; f16/bf16 graph values are widened on
// upload), or, for weights stored as 16-bit (CompileOptions::weight_storage), two f16 or bf16 values
// packed per 32-bit word, element e in the low half of word e/2 when e is even.
enum class ElementStorage : uint8_t { bits32, packed_f16, packed_bf16 };

// Where a tensor's elements live.
struct Storage {
  uint32_t buffer = 0;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  ElementStorage element = ElementStorage::bits32;
};

// attention, conv (also pooling and upsampling) and nn (group norm, rope) kernels are built around
// one op node: only a group norm's pointwise epilogue and ropes read by attention's q/k (and by a
// KV-cache write) join them (compile/grouping.h); compile/op_kernels.h sizes their dispatches.
// classifier: a classifier head, its cross-entropy gradient and the product back (compile/grouping.h).
enum class Archetype : uint8_t { pointwise, reduction, matmul, gather, attention, conv, nn, classifier };
const char* archetype_name(Archetype archetype);

struct Kernel {
  Archetype archetype = Archetype::pointwise;
  // Graph nodes computed here, ascending (so topological); `root` is the one whose value is stored,
  // `anchor` the node that sets the archetype (the matmul, the reduction; the root for pointwise).
  std::vector<int32_t> nodes;
  int32_t root = -1;
  int32_t anchor = -1;
  // Nodes outside the kernel it reads, in the order codegen binds them (binding i), then the root
  // (binding inputs.size()), then `extra_outputs` (bindings inputs.size() + 1, …), then, for
  // kernels with arrival counters, their partial results (arena) and the counters (workspace).
  std::vector<int32_t> inputs;
  std::vector<int32_t> extra_outputs;  // values stored besides the root (an attention's row lse)
  std::vector<Storage> bindings;       // inputs.size() + 1 + extra_outputs.size() (+ 2) ranges
  std::array<uint32_t, 3> local_size = {1, 1, 1};
  std::array<uint32_t, 3> workgroups = {1, 1, 1};
  std::array<uint32_t, 2> register_tile = {1, 1};  // matmul, conv: outputs per thread (rows, cols);
                                                  // attention: keys, queries per shared-memory tile;
                                                  // reduction: rows per workgroup (1: a workgroup
                                                  // per row; more: one invocation per row);
                                                  // top_k_top_p_mask: workgroups per row;
                                                  // classifier: rows per workgroup, and the
                                                  // subgroup size its sums use (0: none)
  uint64_t work_items = 0;  // elements (pointwise, gather) or rows (reduction) the dispatch covers
  // matmul: the cooperative-matrix form (f16 operands, f32 accumulation; compile/cooperative_matmul.h).
  bool cooperative_matrix = false;
  // matmul (tiled forms): workgroups per output tile, each summing a run of split_k_span(K, split_k)
  // of the K terms; the last of a tile's workgroups to finish adds their partial sums in split order
  // (deterministic) and applies the epilogue. Products with few output tiles and a long K fill the
  // GPU this way without a second kernel or barrier. Workgroup z is batch · split_k + split.
  uint32_t split_k = 1;
  // matmul: a paired product's second matmul (compile/grouping.h: pairs_with), multiplied beside the
  // anchor's in the 128-row tiles of codegen/matmul_paired.cpp; -1 for none.
  int32_t partner = -1;
  // Workgroups that finish one result together (split-K matmuls; a cross-entropy loss over many
  // classes, a workgroup per row): each stores partial results (`partial_floats` in the arena, live
  // for the kernel alone) and the last to arrive, found through `arrival_counters` counters in the
  // workspace, combines them in a fixed order. Bound after the outputs when arrival_counters > 0.
  uint64_t partial_floats = 0;
  uint32_t arrival_counters = 0;
  bool barrier_before = false;
  // Inference: computes from parameters and constants only (weights stacked for one wider matmul),
  // so the session runs it when parameters change instead of every step; its root has a buffer of
  // its own (BufferKind::derived).
  bool refresh = false;
  // GLSL defining `void store_result(uint i, float v)`, declared after the bindings: when set, the
  // root's elements are stored through it (the runtime folds a parameter's update into the kernel
  // computing its gradient this way; codegen::supports_store_function says which kernels can).
  std::string store_function;
  std::string label;  // "matmul+add+relu (fc1)": ops and names of what it fuses, for traces
};

enum class Purpose : uint8_t { inference, training };

struct CompileOptions {
  Purpose purpose = Purpose::inference;
  // Nodes whose values must survive the step (besides the graph's outputs): gradients read back.
  std::vector<int32_t> keep;
  // Disables fusion (every non-alias node its own kernel): tests compare both forms.
  bool fuse = true;
  // Inference: f16 or bf16 stores the weights that only matmuls and embeddings read as 16-bit values
  // (compile/weight_storage.h); f32 keeps every element 32-bit.
  DType weight_storage = DType::f32;
};

struct Plan {
  Graph graph;  // the graph the plan refers to (node ids below index it)
  std::vector<PlanBuffer> buffers;
  std::vector<Storage> storage;  // one per node (leaves included; unused nodes have bytes == 0)
  std::vector<Kernel> kernels;
  uint32_t arena_buffer = 0;  // index into buffers
  uint64_t arena_bytes = 0;   // peak of the memory planner
  uint64_t unshared_bytes = 0;  // what intermediates would take without sharing
  size_t barrier_count() const;
  std::string summary() const;  // one line per kernel
};

// Groups nodes into kernels, plans memory and places barriers. Throws meganeura::Error naming the op
// for ops without a kernel yet (attention, convolution, pooling).
Plan compile(const Graph& graph, const DeviceCaps& caps, const CompileOptions& options = {});

// Whether a cross-entropy loss runs a workgroup per row of logits (more than 64 classes), the last
// to finish adding up the rows' losses; fewer classes take one workgroup, an invocation per row.
bool cross_entropy_loss_by_rows(const Graph& graph, const Node& node);

// Workgroups each row of a sum/mean/max/argmax reduction is split over (1: one workgroup per row).
// Few long rows (a vocabulary's logits) are split in runs of reduction_span terms; each workgroup
// stores its partial result and the last of a row's workgroups to arrive combines them in order.
uint32_t reduction_row_split(const Graph& graph, const Node& node);
constexpr uint64_t reduction_span = 2048;

// Whether a sum/mean/max reduction runs one invocation per row (many short rows) rather than a
// workgroup per row.
bool reduces_rows_serially(const Graph& graph, const Node& node);

// Whether the device runs the paired-product form (16×16 invocations, 8×8 outputs each).
bool runs_paired_products(const DeviceCaps& caps);

// K terms each workgroup of a split-K matmul sums: K / split rounded up to whole slices of the
// kernel's K step (split_k_granularity: 8 for the prefetching 64×64 and 128×128 tiles, else 16).
uint32_t split_k_granularity(const Kernel& kernel);
uint64_t split_k_span(uint64_t k, uint32_t split, uint32_t granularity);
// The split of K (at most `longest`) for `tiles` output tiles that leaves the fewest terms to the
// busiest of `compute_units` units, each running its workgroups in turn (fewest splits on a tie).
uint32_t balanced_split_k(uint64_t tiles, uint64_t k, uint64_t longest, uint32_t compute_units, uint32_t granularity);

// Elements of `shape` times 4 bytes.
uint64_t tensor_bytes(const Shape& shape);

}  // namespace meganeura::compile
