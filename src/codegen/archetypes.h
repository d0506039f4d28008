// The archetype generators behind codegen::generate (one file each).
#pragma once

#include <string>

#include "compile/device_caps.h"
#include "compile/plan.h"

namespace meganeura::codegen {

std::string generate_pointwise(const Graph& graph, const compile::Kernel& kernel);
std::string generate_gather(const Graph& graph, const compile::Kernel& kernel);
std::string generate_reduction(const Graph& graph, const compile::Kernel& kernel);
std::string generate_matmul(const Graph& graph, const compile::Kernel& kernel);
std::string generate_attention(const Graph& graph, const compile::Kernel& kernel);
std::string generate_conv(const Graph& graph, const compile::Kernel& kernel);  // conv2d and its gradients
std::string generate_pool(const Graph& graph, const compile::Kernel& kernel);  // pooling, upsampling
std::string generate_group_norm(const Graph& graph, const compile::Kernel& kernel);
std::string generate_rope(const Graph& graph, const compile::Kernel& kernel);
std::string generate_classifier(const Graph& graph, const compile::Kernel& kernel);
std::string generate_top_k_top_p_mask(const Graph& graph, const compile::Kernel& kernel);

// GLSL helpers workgroup_sum, workgroup_max and workgroup_argmax (first index on ties) over a
// workgroup of WG invocations, through shared memory; the shader defines `const uint WG` first.
const char* workgroup_reductions();

}  // namespace meganeura::codegen
