// Folding a parameter's optimizer update into the kernel that computes its gradient. The update
// kernels otherwise run as a stage of their own after the backward pass: one more barrier and one
// more read of every parameter and gradient (H100, SGD: the 784-128-10 MLP step 0.0337 -> 0.0315
// ms, the 784-1024-1024-10 one 0.163 -> 0.161 ms). The session folds only updates without state.
//
//   int k = runtime::fusible_gradient_kernel(plan, parameter_node, gradient_node);
//   if (k >= 0) { /* plan.kernels[k] may store through codegen::fused_update_store(...) */ }
#pragma once

#include <cstdint>

#include "compile/plan.h"

namespace meganeura::runtime {

// The plan kernel whose root is `gradient` when it can also update `parameter` in place during the
// step: codegen can store its root through a function, a barrier precedes its stage (the step
// counter, which advances the hyperparameters the update reads, runs beside the first kernels),
// and no kernel from the start of that stage on — itself included — reads the parameter. -1 when
// there is none: the update then runs after the backward pass.
int fusible_gradient_kernel(const compile::Plan& plan, int32_t parameter, int32_t gradient);

// For an update that stays a kernel of its own: the index of the last kernel of the stage after the
// one computing `gradient`, when no kernel from that stage on reads the parameter. The update can be
// recorded there, beside the rest of the backward pass, instead of in a stage of its own after it
// (its moments and the parameter are read and written by nothing else). -1 when there is no such
// stage: the update then follows the backward pass.
int early_update_kernel(const compile::Plan& plan, int32_t parameter, int32_t gradient);

}  // namespace meganeura::runtime
