// Weights stored as 16-bit values for inference: the parameters that only matmuls (as their B
// operand) and embeddings (as their table) read are packed two per 32-bit word, halving the bytes a
// decode step reads; those kernels widen them to f32 as they load. Other parameters (norm scales,
// biases) stay 32-bit.
//
//   compile::Plan plan = compile::compile(graph, caps, {.weight_storage = DType::bf16});
//   plan.storage[graph.find("fc.weight")].element;   // ElementStorage::packed_bf16
//
// compile() applies it when CompileOptions::weight_storage is f16 or bf16.
#pragma once

#include "compile/plan.h"

namespace meganeura::compile {

// Packs every eligible parameter of `plan` as `weight_storage` (f16 or bf16; f32 changes nothing):
// its buffer, storage and kernel bindings shrink to 2 bytes an element.
void store_weights_16bit(Plan& plan, DType weight_storage);

// Inference: graph inputs of dtype f16 that only matmuls and embeddings read are stored as packed f16
// (set_input rounds to f16 on upload), so an f16 GEMM reads 2 bytes an operand element.
void store_f16_inputs_16bit(Plan& plan);

// Bytes `elements` values take in `element` storage.
uint64_t storage_bytes(uint64_t elements, ElementStorage element);

// Whether kernel reads binding `slot` in a way that understands packed 16-bit elements: an operand of
// a matmul or the table of an embedding, read nowhere else in the kernel.
bool reads_packed_weights(const Graph& graph, const Kernel& kernel, size_t slot);

}  // namespace meganeura::compile
