// Generated GLSL is canonical: identical layers give identical text, free of node names and ids.
#include <gtest/gtest.h>

#include "codegen/codegen.h"
#include "codegen/glsl.h"
#include "compile/plan.h"

namespace meganeura::codegen {
namespace {

TEST(Codegen, IdenticalLayersGiveIdenticalShaders) {
  Graph g;
  Tensor h = g.input("x", {4, 8});
  for (int layer = 0; layer < 2; ++layer) {
    auto w = g.parameter("layer" + std::to_string(layer) + ".weight", {8, 8});
    auto b = g.parameter("layer" + std::to_string(layer) + ".bias", {8});
    h = g.silu(g.matmul(h, w, false, true) + b);
    g.set_name(h, "layer" + std::to_string(layer) + ".out");
  }
  g.set_outputs({h});
  const auto caps = compile::DeviceCaps::default_for_tests();
  const compile::Plan plan = compile::compile(g, caps);
  ASSERT_EQ(plan.kernels.size(), 2u);
  const std::string first = generate(plan.graph, plan.kernels[0], caps);
  const std::string second = generate(plan.graph, plan.kernels[1], caps);
  EXPECT_EQ(first, second);
  EXPECT_EQ(first.find("layer"), std::string::npos);
  EXPECT_NE(first.find("#version 450"), std::string::npos);
  EXPECT_NE(plan.kernels[0].label, plan.kernels[1].label);  // labels carry the names instead
}

TEST(Codegen, BroadcastIndexFollowsNumpyRules) {
  EXPECT_EQ(broadcast_index("i", {4, 3}, {4, 3}), "i");
  EXPECT_EQ(broadcast_index("i", {4, 3}, {1}), "0u");
  EXPECT_EQ(broadcast_index("i", {4, 3}, {3}), "(((i / 1u) % 3u))");
  EXPECT_EQ(broadcast_index("i", {2, 4, 3}, {4, 1}), "(((i / 3u) % 4u))");
  EXPECT_EQ(float_literal(0.5), "0.5");
  EXPECT_EQ(float_literal(2), "2.0");
}

}  // namespace
}  // namespace meganeura::codegen
