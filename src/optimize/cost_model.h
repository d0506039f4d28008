// What one node costs on a GPU when it runs as its own kernel: bytes read and written, FLOPs for
// the matrix ops, and a fixed price per dispatch. Fusion wins because the fused kernel moves fewer
// bytes and dispatches once. A slice whose elements are one contiguous, aligned run of its input is
// a view (compile binds it at an offset); at inference, what depends only on parameters and
// constants is a derived copy computed when the parameters change, not per step, so it is free.
//
//   KernelEstimate k = estimate_kernel(Op::matmul, attrs, {{{64, 576}, f32}, {{1536, 576}, f32}}, out);
//   double units = kernel_cost(k);                    // bytes-equivalent
//   GraphEstimate before = estimate_graph(graph);      // dispatches and bytes of a whole graph
#pragma once

#include <vector>

#include "meganeura/graph.h"
#include "optimize/egraph/extract.h"

namespace meganeura::optimizer {

class NnEGraph;

struct KernelEstimate {
  bool dispatch = false;  // false: a leaf or a view (reshape), which costs nothing at run time
  double bytes_read = 0;
  double bytes_written = 0;
  double flops = 0;
};

struct CostWeights {
  double dispatch_bytes = 256.0 * 1024;  // one dispatch's fixed overhead, as bytes of traffic
  double flops_per_byte = 32;            // arithmetic a GPU does in the time it moves one byte
};

KernelEstimate estimate_kernel(Op op, const Attrs& attrs, const std::vector<TensorType>& inputs,
                               const TensorType& out);
// A slice of `input` that is one contiguous run starting at a multiple of kViewAlignment bytes
// (4 bytes an element, as buffers hold them): compile binds it in place of a copy.
inline constexpr uint64_t kViewAlignment = 256;
bool slice_is_view(const Shape& input, const Attrs& attrs);
double kernel_cost(const KernelEstimate& k, const CostWeights& weights = {});

struct GraphEstimate {
  size_t dispatches = 0;
  double bytes = 0;
  double flops = 0;
  double cost = 0;
};
// inference: nodes computed from parameters and constants alone are derived copies, not per-step work.
GraphEstimate estimate_graph(const Graph& graph, const CostWeights& weights = {}, bool inference = false);

// The extraction cost of an e-node; nodes shape inference rejects are never chosen.
class NnCostModel : public egraph::CostModel {
 public:
  // inference: nodes whose children all depend on parameters and constants only are (almost) free.
  NnCostModel(const NnEGraph& eg, CostWeights weights = {}, bool inference = false);
  double node_cost(const egraph::EGraph& g, egraph::ClassId cls, const egraph::ENode& node) const override;

 private:
  bool is_derived(const egraph::ENode& node) const;

  const NnEGraph& eg_;
  CostWeights weights_;
  bool inference_ = false;
  std::vector<uint8_t> derived_;  // per class id: some node depends on parameters and constants only
};

}  // namespace meganeura::optimizer
