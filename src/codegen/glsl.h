// Small GLSL writing helpers shared by the archetype generators.
//
//   std::string lit = codegen::float_literal(0.5);               // "0.5"
//   std::string idx = codegen::broadcast_index("i", {4, 3}, {3});  // "(i % 3u)"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compile/device_caps.h"
#include "compile/plan.h"
#include "meganeura/graph.h"

namespace meganeura::codegen {

std::string float_literal(double value);
std::string uint_literal(uint64_t value);

// Flat index into `from` (a tensor broadcast to the shape `to`, NumPy rules) of the flat index
// `index` into `to`.
std::string broadcast_index(const std::string& index, const Shape& to, const Shape& from);

// Row-major strides of a shape.
std::vector<int64_t> strides_of(const Shape& shape);

// "#version 450", the workgroup size and the storage-buffer declarations: binding i is `in<i>`
// (element type from the input's dtype), the last is `result`.
std::string shader_header(const Graph& graph, const compile::Kernel& kernel);
// The same with GL_EXT_control_flow_attributes enabled, for [[unroll]] and [[dont_unroll]] loops.
std::string shader_header_with_loop_attributes(const Graph& graph, const compile::Kernel& kernel);
// The GLSL statement storing `value` as element `index` of the root: `result.data[index] = value;`,
// or a call of the kernel's store function (compile::Kernel::store_function) when it has one.
std::string store_output(const compile::Kernel& kernel, const std::string& index, const std::string& value);

// Whether the kernel may store four consecutive elements of its root as one vec4 through
// `result4` (vec4_result_declaration, an alias of the result binding): an f32 root stored directly
// (no store function) at a 16-byte aligned offset, in rows of `columns`, a multiple of four. Scalar
// stores of four columns a thread apart left a prefill's SwiGLU products 2 µs slower on an H100.
bool stores_vec4(const Graph& graph, const compile::Kernel& kernel, int64_t columns);
std::string vec4_result_declaration(const compile::Kernel& kernel);

// Input binding `slot` again as vec4s, `in<slot>v4`: for reading f32 rows of a multiple of 4 one
// 16-byte load at a time. vec4_input_readable says whether the binding allows it (f32 elements, a
// 16-byte aligned range; the caller checks its rows).
std::string vec4_input_declaration(size_t slot);
bool vec4_input_readable(const compile::Kernel& kernel, size_t slot);
// Whether the kernel's store function also stores four consecutive elements (from a multiple of 4)
// at once: `void store_result4(uint i, vec4 v)`, its own `result4` declared (a head-split store,
// compile/grouping.h), with the result's range 16-byte aligned.
bool stores_vec4_through_function(const compile::Kernel& kernel);

// The binding name of value `id` the kernel stores: `result` for its root, result1, result2, … for
// its extra outputs (compile::Kernel::extra_outputs). Error for a value it does not store.
std::string output_binding(const compile::Kernel& kernel, int32_t id);

// For kernels with arrival counters (compile::Kernel::arrival_counters): the `partials` (float) and
// `arrivals` (uint) buffers, both coherent, and GLSL `bool arrive_last(uint counter, uint expected)`:
// called by every invocation once it has stored its partials, it returns true in the last of the
// `expected` workgroups to arrive at `counter` (which it resets for the next dispatch) and false in
// the others. Call it from uniform control flow.
std::string arrival_declarations(const compile::Kernel& kernel);

// The GLSL element type of a tensor ("float" or "int").
const char* element_type(DType dtype);

// Common math helpers (erf, stable tanh, dropout hash) used by pointwise expressions.
const char* math_helpers();

// The flat workgroup index over a dispatch spread across x and y.
const char* linear_workgroup_index();
const char* linear_invocation_index();

}  // namespace meganeura::codegen
