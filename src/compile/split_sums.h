// compile::split_long_sums — weight gradients made parallel.
//
//   Graph faster = compile::split_long_sums(graph);   // same names, outputs and values
//
// A weight gradient sums over every row of the batch (a conv's dW over N·Ho·Wo positions, a linear
// layer's dW over all tokens) into a small result. The GEMM kernels give each workgroup one tile of
// the result, so such a product runs in a handful of workgroups that each walk the whole sum while
// most of the GPU idles (a diffusion UNet's 3×3 conv dW: 9 workgroups × 131,072 terms). This pass
// splits the sum into S interleaved parts that run as S times more workgroups, then adds the parts:
//
//   conv2d_grad_weight(x [N, C, H, W], dy [N, Co, Ho, Wo], groups g)
//     → x' = reshape(x, [N/S, S·C, H, W]), dy' = reshape(dy, [N/S, S·Co, Ho, Wo])   (free: aliases)
//       sum(reshape(conv2d_grad_weight(x', dy', groups S·g), [S, Co, C/g, kh, kw]), axis 0)
//     (channel block s of x' is image j·S + s, so group s·g + i of the grouped product is group i
//      over the images n ≡ s mod S)
//   matmul(a [K, M], b [K, N], transpose_a)
//     → sum(matmul(reshape(a, [S, K/S, M]), reshape(b, [S, K/S, N]), transpose_a), axis 0)
//
// Only the graph changes: every part is an existing op with its own kernel, reference and tests.
// Names and outputs are kept (the replaced node's name moves to the sum), ids are not.
#pragma once

#include <cstdint>

#include "meganeura/graph.h"

namespace meganeura::compile {

struct SplitSumOptions {
  // Split until the product has about this many output tiles (workgroups) in flight… (which also
  // bounds the partial results: at most this many 64×64 tiles, 8 MiB)
  uint64_t target_workgroups = 512;
  // …but keep at least this many terms in each part, so the extra sum stays cheap.
  uint64_t min_part_length = 1024;
};

// How many parts the sum of `length` terms over `tiles` workgroups is split into: a power of two
// dividing `divisible_by` (the batch for a conv, K for a matmul); 1 when splitting would not help.
int64_t sum_split_parts(uint64_t tiles, uint64_t length, int64_t divisible_by, const SplitSumOptions& options);

Graph split_long_sums(const Graph& graph, const SplitSumOptions& options = {});

}  // namespace meganeura::compile
