// codegen: one GLSL compute shader (#version 450) per compiled kernel.
//
//   compile::Plan plan = compile::compile(graph, caps);
//   std::string glsl = codegen::generate(plan.graph, plan.kernels[0], caps);
//
// The text depends only on the kernel's structure, shapes, attributes and the device caps — never on
// node ids or names — so identical layers produce identical shaders and share one cache entry.
// Bindings: set 0, binding i is kernel.inputs[i] (readonly), the last binding is the output. Every
// element is 32 bits (float, or int for i32 tensors). MEGANEURA_DUMP_SHADERS=<dir> writes each
// generated shader there (see dump_shader).
#pragma once

#include <string>

#include "compile/device_caps.h"
#include "compile/plan.h"

namespace meganeura::codegen {

std::string generate(const Graph& graph, const compile::Kernel& kernel, const compile::DeviceCaps& caps);

// Whether generate honours compile::Kernel::store_function for this kernel: every matmul form (the
// cooperative one then stores each tile through shared memory) and sum or mean reductions, whose
// root is f32.
bool supports_store_function(const Graph& graph, const compile::Kernel& kernel);

// When MEGANEURA_DUMP_SHADERS names a folder, writes `source` there as <hash>.comp with the label in
// a leading comment, and returns the path written ("" when the variable is unset).
std::string dump_shader(const std::string& source, const std::string& label);

}  // namespace meganeura::codegen
