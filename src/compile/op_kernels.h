// Ops with a kernel generator of their own (attention, convolution, pooling, upsampling, group norm,
// rope): which archetype generates each, and the workgroup and tile sizes its dispatch uses.
//
//   if (compile::has_op_kernel(node.op)) {
//     kernel.archetype = compile::op_kernel_archetype(node.op);  // Archetype::attention, ...
//     compile::set_op_kernel_dispatch(graph, caps, kernel);      // local size, tiles, workgroups
//   }
//
// These kernels hold exactly one graph node. The sizes chosen here are what codegen bakes into the
// shader, so compile and codegen agree through the Kernel alone.
#pragma once

#include "compile/device_caps.h"
#include "compile/plan.h"
#include "meganeura/graph.h"

namespace meganeura::compile {

bool has_op_kernel(Op op);
Archetype op_kernel_archetype(Op op);  // Error for ops without a kernel of their own
void set_op_kernel_dispatch(const Graph& graph, const DeviceCaps& caps, Kernel& kernel);

}  // namespace meganeura::compile
