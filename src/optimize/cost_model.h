// What one node costs on a GPU when it runs as its own kernel: bytes read and written, FLOPs for
// the matrix ops, and a fixed price per dispatch. Fusion wins because the fused kernel moves fewer
// bytes and dispatches once.
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
double kernel_cost(const KernelEstimate& k, const CostWeights& weights = {});

struct GraphEstimate {
  size_t dispatches = 0;
  double bytes = 0;
  double flops = 0;
  double cost = 0;
};
GraphEstimate estimate_graph(const Graph& graph, const CostWeights& weights = {});

// The extraction cost of an e-node; nodes shape inference rejects are never chosen.
class NnCostModel : public egraph::CostModel {
 public:
  explicit NnCostModel(const NnEGraph& eg, CostWeights weights = {}) : eg_(eg), weights_(weights) {}
  double node_cost(const egraph::EGraph& g, egraph::ClassId cls, const egraph::ENode& node) const override;

 private:
  const NnEGraph& eg_;
  CostWeights weights_;
};

}  // namespace meganeura::optimizer
