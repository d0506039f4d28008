// Every op of the table has shape inference and a reference implementation: each op's example
// builds (shape inference ran) and evaluates to finite values of the inferred size.
#include <gtest/gtest.h>

#include <cmath>

#include "meganeura/reference.h"
#include "reference/op_examples.h"

using namespace meganeura;

TEST(ReferenceCoverage, EveryOpHasShapeInferenceAndReference) {
  for (Op op : all_ops()) {
    SCOPED_TRACE(op_name(op));
    reference::OpExample ex = reference::op_example(op);
    const Node& node = ex.graph.node(ex.node);
    ASSERT_EQ(node.op, op);
    reference::Values values;
    ASSERT_NO_THROW(values = reference::run(ex.graph, ex.feeds));
    const auto& v = values[static_cast<size_t>(ex.node)];
    ASSERT_EQ(v.size(), static_cast<size_t>(num_elements(node.shape)));
    double magnitude = 0;
    for (double x : v) {
      EXPECT_TRUE(std::isfinite(x)) << "non-finite value";
      magnitude += std::fabs(x);
    }
    if (op != Op::greater && op != Op::argmax) {
      EXPECT_GT(magnitude, 0.0) << "all-zero result: the example does not exercise the op";
    }
  }
}

TEST(ReferenceCoverage, EvaluateMatchesRunForEveryOp) {
  for (Op op : all_ops()) {
    if (op_category(op) == OpCategory::leaf) continue;
    SCOPED_TRACE(op_name(op));
    reference::OpExample ex = reference::op_example(op, 5);
    const auto values = reference::run(ex.graph, ex.feeds);
    std::vector<const std::vector<double>*> inputs;
    for (int32_t id : ex.graph.node(ex.node).inputs) inputs.push_back(&values[static_cast<size_t>(id)]);
    EXPECT_EQ(reference::evaluate(ex.graph, ex.node, inputs), values[static_cast<size_t>(ex.node)]);
  }
}

TEST(ReferenceCoverage, InferTypeAgreesWithTheBuiltNodeForEveryOp) {
  for (Op op : all_ops()) {
    if (op_category(op) == OpCategory::leaf) continue;
    SCOPED_TRACE(op_name(op));
    reference::OpExample ex = reference::op_example(op);
    const Node& node = ex.graph.node(ex.node);
    std::vector<TensorType> inputs;
    for (int32_t id : node.inputs) inputs.push_back({ex.graph.node(id).shape, ex.graph.node(id).dtype});
    const TensorType t = infer_type(node.op, node.attrs, inputs);
    EXPECT_EQ(t.shape, node.shape);
    EXPECT_EQ(t.dtype, node.dtype);
  }
}

TEST(ReferenceCoverage, DumpHasOneLinePerNodeForEveryOp) {
  for (Op op : all_ops()) {
    SCOPED_TRACE(op_name(op));
    reference::OpExample ex = reference::op_example(op);
    const std::string text = ex.graph.dump();
    size_t lines = 0;
    for (char c : text) lines += c == '\n';
    EXPECT_EQ(lines, ex.graph.size() + 1);  // + the outputs line
    const std::string line = "%" + std::to_string(ex.node) + " = " + op_name(op) + "(";
    EXPECT_NE(text.find(line), std::string::npos) << text;
  }
}
