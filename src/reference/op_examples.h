// A tiny, valid instance of every op of the table on random (never all-zero) data: used to check
// that each op has shape inference and a reference implementation, and reusable by the gradient,
// optimizer and kernel tests that must cover every op.
#pragma once

#include <cstdint>

#include "meganeura/graph.h"
#include "meganeura/reference.h"

namespace meganeura::reference {

struct OpExample {
  Graph graph;      // its output is the example node
  Feeds feeds;      // every input of the graph, random; i32 inputs hold valid ids/labels/offsets
  int32_t node = -1;  // the node computing the op under test
};

// Builds the example for `op`; the same seed gives the same data.
OpExample op_example(Op op, uint64_t seed = 1);

}  // namespace meganeura::reference
