// Optimizer-update kernels, appended to a training step by the runtime (they are not graph ops: an
// update writes its parameter in place, which the graph's value semantics do not express).
//
//   std::string glsl = codegen::optimizer_update(OptimizerSpec::adamw(1e-3), /*local_size=*/256);
//   // bindings: 0 parameter, 1 gradient, 2 hyperparameters, then state (velocity, or m and v);
//   // push constants: {uint count, uint row_width}
//
// The hyperparameter buffer (floats) holds what may change without re-recording; see Hyper.
#pragma once

#include <cstdint>
#include <string>

#include "meganeura/session.h"

namespace meganeura::codegen {

// Slots of the hyperparameter buffer.
enum Hyper : uint32_t {
  hyper_learning_rate = 0,
  hyper_beta1,
  hyper_beta2,
  hyper_eps,
  hyper_weight_decay,
  hyper_momentum,
  hyper_step,         // updates so far, incremented on the GPU by optimizer_step_counter()
  hyper_grad_scale,   // 1, or the global-norm clipping factor written by optimizer_clip_finish()
  hyper_clip_norm,
  hyper_beta1_power,  // beta1^step and beta2^step, multiplied up on the GPU each step (a GLSL pow
  hyper_beta2_power,  // is too coarse for 1 - beta2^t when beta2 is close to 1)
  hyper_count
};

// How many state buffers (each the parameter's size) an update keeps: 0, 1 (momentum) or 2 (Adam).
uint32_t optimizer_state_buffers(const OptimizerSpec& spec);

std::string optimizer_update(const OptimizerSpec& spec, uint32_t local_size);
// The same update folded into the kernel that computes the gradient (compile::Kernel::store_function):
// `void store_result(uint i, float g)` stores gradient element i and updates parameter element i.
// Bindings from first_binding: the parameter, the hyperparameters, then the state buffers.
std::string fused_update_store(const OptimizerSpec& spec, uint32_t first_binding);
// One invocation: hyper[step] += 1 and the beta powers advance.
std::string optimizer_step_counter();
// One workgroup sums the squares of one gradient into partials[slot]; bindings 0 gradient,
// 1 partials; push constants {uint count, uint slot}.
std::string optimizer_clip_partial(uint32_t local_size);
// One invocation turns the partials into hyper[grad_scale] = min(1, clip / (norm + 1e-6));
// bindings 0 partials, 1 hyper; push constant {uint count}.
std::string optimizer_clip_finish();

}  // namespace meganeura::codegen
