#include "codegen/optimizer.h"

#include <sstream>

namespace meganeura::codegen {

uint32_t optimizer_state_buffers(const OptimizerSpec& spec) {
  if (spec.kind == OptimizerSpec::Kind::sgd) return spec.momentum != 0.0 ? 1 : 0;
  return 2;
}

namespace {

const char* hyper_constants() {
  return "const uint LEARNING_RATE = 0u, BETA1 = 1u, BETA2 = 2u, EPS = 3u, WEIGHT_DECAY = 4u, MOMENTUM = 5u,\n"
         "           STEP = 6u, GRAD_SCALE = 7u, CLIP_NORM = 8u, BETA1_POWER = 9u, BETA2_POWER = 10u;\n";
}

}  // namespace

namespace {

// Bindings of the update from `first`: the parameter, the hyperparameters, then the state buffers.
std::string update_bindings(const OptimizerSpec& spec, uint32_t parameter, uint32_t hyper) {
  std::ostringstream out;
  // Nothing else is bound to the parameter or its state (restrict: see fused_update_store).
  out << "layout(std430, set = 0, binding = " << parameter << ") restrict buffer Parameter { float data[]; } parameter;\n"
      << "layout(std430, set = 0, binding = " << hyper << ") restrict readonly buffer Hyperparameters { float data[]; } hyper;\n";
  for (uint32_t s = 0; s < optimizer_state_buffers(spec); ++s) {
    out << "layout(std430, set = 0, binding = " << hyper + 1 + s << ") restrict buffer State" << s << " { float data[]; } state"
        << s << ";\n";
  }
  return out.str();
}

// Statements that apply gradient `g` (a float variable, scaled here by hyper[GRAD_SCALE]) to element
// i of the parameter and its state. Expects the constants of hyper_constants().
std::string update_statements(const OptimizerSpec& spec) {
  std::ostringstream out;
  out << "  float lr = hyper.data[LEARNING_RATE];\n"
      << "  float p = parameter.data[i];\n"
      << "  g *= hyper.data[GRAD_SCALE];\n";
  switch (spec.kind) {
    case OptimizerSpec::Kind::sgd:
      out << "  g += hyper.data[WEIGHT_DECAY] * p;\n";
      if (optimizer_state_buffers(spec) == 1) {
        out << "  float velocity = hyper.data[MOMENTUM] * state0.data[i] + g;  // PyTorch's form (no dampening)\n"
            << "  state0.data[i] = velocity;\n  g = velocity;\n";
      }
      out << "  parameter.data[i] = p - lr * g;\n";
      break;
    case OptimizerSpec::Kind::adam:
    case OptimizerSpec::Kind::adamw:
      if (spec.kind == OptimizerSpec::Kind::adam) {
        out << "  g += hyper.data[WEIGHT_DECAY] * p;  // L2 penalty through the gradient\n";
      } else {
        out << "  p -= lr * hyper.data[WEIGHT_DECAY] * p;  // decoupled weight decay\n";
      }
      out << "  float beta1 = hyper.data[BETA1], beta2 = hyper.data[BETA2];\n"
          << "  float m = beta1 * state0.data[i] + (1.0 - beta1) * g;\n"
          << "  float v = beta2 * state1.data[i] + (1.0 - beta2) * g * g;\n"
          << "  state0.data[i] = m;\n  state1.data[i] = v;\n"
          << "  float m_hat = m / (1.0 - hyper.data[BETA1_POWER]);\n"
          << "  float v_hat = v / (1.0 - hyper.data[BETA2_POWER]);\n"
          << "  parameter.data[i] = p - lr * m_hat / (sqrt(v_hat) + hyper.data[EPS]);\n";
      break;
  }
  return out.str();
}

}  // namespace

std::string optimizer_update(const OptimizerSpec& spec, uint32_t local_size) {
  std::ostringstream out;
  out << "#version 450\nlayout(local_size_x = " << local_size << ") in;\n\n"
      << "layout(std430, set = 0, binding = 1) readonly buffer Gradient { float data[]; } gradient;\n"
      << update_bindings(spec, 0, 2)
      << "layout(push_constant) uniform Size { uint count; uint row_width; } size;\n\n" << hyper_constants() << "\n"
      << "void main() {\n"
      << "  uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * size.row_width;\n"
      << "  if (i >= size.count) return;\n"
      << "  float g = gradient.data[i];\n"
      << update_statements(spec) << "}\n";
  return out.str();
}

std::string fused_update_store(const OptimizerSpec& spec, uint32_t first_binding) {
  std::ostringstream out;
  out << update_bindings(spec, first_binding, first_binding + 1) << hyper_constants()
      << "void store_result(uint i, float g) {\n"
      << "  result.data[i] = g;\n"
      << update_statements(spec) << "}\n\n";
  return out.str();
}

std::string optimizer_step_counter() {
  std::ostringstream out;
  out << "#version 450\nlayout(local_size_x = 1) in;\n\n"
      << "layout(std430, set = 0, binding = 0) buffer Hyperparameters { float data[]; } hyper;\n\n"
      << hyper_constants() << "\nvoid main() {\n  hyper.data[STEP] += 1.0;\n  hyper.data[BETA1_POWER] *= hyper.data[BETA1];\n  hyper.data[BETA2_POWER] *= hyper.data[BETA2];\n}\n";
  return out.str();
}

std::string optimizer_clip_partial(uint32_t local_size) {
  std::ostringstream out;
  out << "#version 450\nlayout(local_size_x = " << local_size << ") in;\n\n"
      << "layout(std430, set = 0, binding = 0) readonly buffer Gradient { float data[]; } gradient;\n"
      << "layout(std430, set = 0, binding = 1) buffer Partials { float data[]; } partials;\n"
      << "layout(push_constant) uniform Size { uint count; uint slot; } size;\n\n"
      << "const uint WG = " << local_size << "u;\nshared float sums[WG];\n\n"
      << "void main() {\n"
      << "  uint lid = gl_LocalInvocationID.x;\n"
      << "  float total = 0.0;\n"
      << "  for (uint i = lid; i < size.count; i += WG) total += gradient.data[i] * gradient.data[i];\n"
      << "  sums[lid] = total;\n  barrier();\n"
      << "  for (uint stride = WG / 2u; stride > 0u; stride >>= 1u) {\n"
      << "    if (lid < stride) sums[lid] += sums[lid + stride];\n    barrier();\n  }\n"
      << "  if (lid == 0u) partials.data[size.slot] = sums[0];\n"
      << "}\n";
  return out.str();
}

std::string optimizer_clip_finish() {
  std::ostringstream out;
  out << "#version 450\nlayout(local_size_x = 1) in;\n\n"
      << "layout(std430, set = 0, binding = 0) readonly buffer Partials { float data[]; } partials;\n"
      << "layout(std430, set = 0, binding = 1) buffer Hyperparameters { float data[]; } hyper;\n"
      << "layout(push_constant) uniform Size { uint count; } size;\n\n"
      << hyper_constants() << "\n"
      << "void main() {\n"
      << "  float total = 0.0;\n"
      << "  for (uint i = 0u; i < size.count; ++i) total += partials.data[i];\n"
      << "  hyper.data[GRAD_SCALE] = min(1.0, hyper.data[CLIP_NORM] / (sqrt(total) + 1e-6));\n"
      << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
