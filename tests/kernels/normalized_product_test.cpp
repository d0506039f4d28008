// An RMSNorm read only as the rows of products (a layer's q, k and v; its gate and up) is computed
// inside each product's kernel (compile/grouping.h: normalizes_product_rows): the norm's weight
// multiplies B as it loads, each kernel sums the squares of its rows (split-K parts carry them with
// their partial sums) and scales its outputs by 1/rms. Against the CPU reference in every tiled
// form, paired and unpaired, and the cases that keep the norm's own kernel.
#include <algorithm>

#include "compile/grouping.h"
#include "compile/plan.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

size_t count_kernels(const compile::Plan& plan, compile::Archetype archetype) {
  return static_cast<size_t>(std::count_if(plan.kernels.begin(), plan.kernels.end(),
                                           [&](const compile::Kernel& k) { return k.archetype == archetype; }));
}

// Whether every product kernel of the plan has the norm among its nodes.
bool every_product_normalizes(const compile::Plan& plan) {
  bool any = false;
  for (const compile::Kernel& kernel : plan.kernels) {
    if (kernel.archetype != compile::Archetype::matmul) continue;
    any = true;
    const bool norm = std::any_of(kernel.nodes.begin(), kernel.nodes.end(),
                                  [&](int32_t id) { return plan.graph.node(id).op == Op::rms_norm; });
    if (!norm) return false;
  }
  return any;
}

const compile::Kernel& first_product(const compile::Plan& plan) {
  return *std::find_if(plan.kernels.begin(), plan.kernels.end(),
                       [](const compile::Kernel& k) { return k.archetype == compile::Archetype::matmul; });
}

// rms_norm(x) · Wᵢᵀ for three weights of `widths` columns (q, k and v), + a residual on the first.
Graph three_products(int64_t batch, int64_t rows, int64_t k, std::vector<int64_t> widths, bool weights_kn = false) {
  Graph g;
  Tensor x = g.input("x", {batch, rows, k});
  Tensor normed = g.rms_norm(x * 2.0, g.input("gain", {k}), 1e-5);
  std::vector<Tensor> outs;
  for (size_t i = 0; i < widths.size(); ++i) {
    const std::string name = "w" + std::to_string(i);
    Tensor product = weights_kn ? g.matmul(normed, g.input(name, {k, widths[i]}))
                                : g.matmul(normed, g.input(name, {widths[i], k}), false, true);
    if (i == 0) product = product + g.input("residual", {batch, rows, widths[0]});
    outs.push_back(product);
  }
  g.set_outputs(outs);
  return g;
}

TEST(NormalizedProduct, EveryReaderNormalizesItsRows) {
  struct Case {
    int64_t batch, rows, k;
    std::vector<int64_t> widths;
    bool weights_kn, small;
  };
  // 64×64 prefetching tiles with partial ones; K = 600 split; weights stored [K, N]; the 8×8
  // workgroups of a small device; one product of 128×128 tiles (8×8 outputs per invocation).
  const Case cases[] = {{2, 70, 40, {96, 32, 32}, false, false}, {1, 100, 600, {70, 40, 40}, false, false},
                        {1, 50, 36, {30, 20}, true, false},       {1, 36, 48, {24, 16, 16}, false, true},
                        {1, 2048, 20, {2048}, false, false}};
  for (const Case& c : cases) {
    const Graph g = three_products(c.batch, c.rows, c.k, c.widths, c.weights_kn);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(c.small));
    EXPECT_EQ(count_kernels(plan, compile::Archetype::reduction), 0u) << plan.summary();
    EXPECT_EQ(count_kernels(plan, compile::Archetype::matmul), c.widths.size()) << plan.summary();
    EXPECT_TRUE(every_product_normalizes(plan)) << plan.summary();
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 71), c.small);
    ASSERT_EQ(errors.size(), c.widths.size());
    for (double error : errors) EXPECT_LE(error, 1e-5) << c.rows << " rows, K " << c.k;
  }
  // The big case took the 8×8 form, the K = 600 one split K.
  const compile::Plan wide = compile::compile(three_products(1, 2048, 20, {2048}), kernel_tests::test_caps(false));
  EXPECT_EQ(first_product(wide).register_tile[0], 8u) << wide.summary();
  const compile::Plan split = compile::compile(three_products(1, 100, 600, {70, 40, 40}), kernel_tests::test_caps(false));
  EXPECT_GT(first_product(split).split_k, 1u) << split.summary();
}

// swiglu(rms_norm(x)·Gᵀ, rms_norm(x)·Uᵀ) + x: the paired product normalizes the shared rows.
Graph normed_mlp(int64_t rows, int64_t width, int64_t hidden) {
  Graph g;
  Tensor x = g.input("x", {1, rows, width});
  Tensor normed = g.rms_norm(x, g.input("gain", {width}), 1e-5);
  Tensor gate = g.matmul(normed, g.input("gate", {hidden, width}), false, true);
  Tensor up = g.matmul(normed, g.input("up", {hidden, width}), false, true);
  g.set_outputs({g.swiglu(gate, up) + g.input("residual", {1, rows, hidden})});
  return g;
}

TEST(NormalizedProduct, PairedProductsNormalizeTheSharedRows) {
  // Widths of 90 and 70 columns store each output alone, 96 four at a time (glsl.h: stores_vec4).
  for (const auto& [rows, width, hidden] : {std::tuple{100, 72, 90}, std::tuple{130, 600, 70}, std::tuple{70, 40, 96}}) {
    const Graph g = normed_mlp(rows, width, hidden);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
    ASSERT_EQ(plan.kernels.size(), 1u) << plan.summary();
    EXPECT_GE(plan.kernels[0].partner, 0);
    EXPECT_TRUE(every_product_normalizes(plan));
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 72), false);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LE(errors[0], 1e-5) << rows << " rows, K " << width;
  }
  // A small device computes the gate in a kernel of its own: both normalize.
  const Graph g = normed_mlp(40, 50, 24);
  const compile::Plan small = compile::compile(g, kernel_tests::test_caps(true));
  EXPECT_EQ(count_kernels(small, compile::Archetype::matmul), 2u) << small.summary();
  EXPECT_EQ(count_kernels(small, compile::Archetype::reduction), 0u) << small.summary();
  EXPECT_TRUE(every_product_normalizes(small)) << small.summary();
  for (double error : kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 73), true)) EXPECT_LE(error, 1e-5);
}

TEST(NormalizedProduct, ANormReadElsewhereKeepsItsKernel) {
  Graph g;
  Tensor x = g.input("x", {1, 20, 32});
  Tensor normed = g.rms_norm(x, g.input("gain", {32}), 1e-5);
  Tensor product = g.matmul(normed, g.input("w", {24, 32}), false, true);
  g.set_outputs({product, normed + 1.0});
  const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
  EXPECT_EQ(count_kernels(plan, compile::Archetype::reduction), 1u) << plan.summary();
  EXPECT_FALSE(every_product_normalizes(plan));
  for (double error : kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 74), false)) EXPECT_LE(error, 1e-5);
  // Training reads the norm in the backward too: it keeps its kernel and the gradients hold.
  Graph t;
  Tensor tx = t.input("x", {1, 12, 16});
  Tensor gain = t.parameter("gain", {16}, Init::normal(1.0, 0.3));
  Tensor w = t.parameter("w", {8, 16}, Init::uniform(-1, 1));
  t.set_outputs({t.sum_all(t.relu(t.matmul(t.rms_norm(tx, gain, 1e-5), w, false, true)))});
  const Session session = kernel_tests::expect_training_gradients(t, kernel_tests::random_inputs(t, 75), 8, 2e-5);
  EXPECT_NE(session.plan_summary().find("rms_norm"), std::string::npos) << session.plan_summary();
}

TEST(NormalizedProduct, CooperativeProductsKeepTheNormKernel) {
  // With f16 weights on a device that runs the tensor-core form, the products take it and the norm
  // keeps its kernel; with f32 weights the same device normalizes in the scalar products. (A paired
  // product has no tensor-core form, so it normalizes its rows either way.)
  Graph g;
  Tensor x = g.input("x", {1, 64, 96});
  Tensor normed = g.rms_norm(x, g.parameter("gain", {96}), 1e-5);
  g.set_outputs({g.matmul(normed, g.parameter("wq", {80, 96}), false, true),
                 g.matmul(normed, g.parameter("wk", {32, 96}), false, true)});
  const compile::DeviceCaps gpu = compile::DeviceCaps::default_for_tests();
  compile::CompileOptions f16;
  f16.weight_storage = DType::f16;
  const compile::Plan cooperative = compile::compile(g, gpu, f16);
  EXPECT_EQ(count_kernels(cooperative, compile::Archetype::reduction), 1u) << cooperative.summary();
  for (const compile::Kernel& kernel : cooperative.kernels) {
    if (kernel.archetype == compile::Archetype::matmul) {
      EXPECT_TRUE(kernel.cooperative_matrix) << kernel.label;
    }
  }
  // Too few tiles to fill the device's compute units: the scalar forms, normalizing their rows.
  compile::DeviceCaps many_units = gpu;
  many_units.compute_units = 132;
  const compile::Plan unfilled = compile::compile(g, many_units, f16);
  EXPECT_EQ(count_kernels(unfilled, compile::Archetype::reduction), 0u) << unfilled.summary();
  EXPECT_TRUE(every_product_normalizes(unfilled)) << unfilled.summary();
  const compile::Plan scalar = compile::compile(g, gpu);
  EXPECT_EQ(count_kernels(scalar, compile::Archetype::reduction), 0u) << scalar.summary();
  EXPECT_TRUE(every_product_normalizes(scalar)) << scalar.summary();
  Graph mlp;
  Tensor y = mlp.input("y", {1, 64, 96});
  Tensor rows = mlp.rms_norm(y, mlp.parameter("gain", {96}), 1e-5);
  mlp.set_outputs({mlp.swiglu(mlp.matmul(rows, mlp.parameter("gate", {80, 96}), false, true),
                              mlp.matmul(rows, mlp.parameter("up", {80, 96}), false, true))});
  const compile::Plan paired = compile::compile(mlp, gpu, f16);
  ASSERT_GE(paired.kernels.back().partner, 0) << paired.summary();
  EXPECT_EQ(count_kernels(paired, compile::Archetype::reduction), 0u) << paired.summary();
  EXPECT_TRUE(every_product_normalizes(paired)) << paired.summary();
}

TEST(NormalizedProduct, SixteenBitWeightsWidenAsTheyLoad) {
  // q/k-like products and a paired gate/up over one norm each, weights stored as f16 and bf16 (no
  // cooperative form on the test device): against the reference on the weights as the session
  // holds them.
  Graph g;
  Tensor x = g.input("x", {1, 70, 96});
  Tensor normed = g.rms_norm(x, g.parameter("gain", {96}, Init::normal(1.0, 0.3)), 1e-5);
  Tensor q = g.matmul(normed, g.parameter("wq", {64, 96}, Init::normal(0.0, 0.3)), false, true);
  Tensor k = g.matmul(normed, g.parameter("wk", {32, 96}, Init::normal(0.0, 0.3)), false, true);
  Tensor rows = g.rms_norm(q, g.parameter("gain2", {64}, Init::normal(1.0, 0.3)), 1e-5);
  Tensor mlp = g.swiglu(g.matmul(rows, g.parameter("gate", {40, 64}, Init::normal(0.0, 0.3)), false, true),
                        g.matmul(rows, g.parameter("up", {40, 64}, Init::normal(0.0, 0.3)), false, true));
  g.set_outputs({k, mlp});
  for (DType storage : {DType::f16, DType::bf16}) {
    compile::CompileOptions options;
    options.weight_storage = storage;
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false), options);
    EXPECT_EQ(count_kernels(plan, compile::Archetype::reduction), 0u) << plan.summary();
    size_t packed = 0;
    for (const compile::Kernel& kernel : plan.kernels) {
      for (const compile::Storage& binding : kernel.bindings) packed += binding.element != compile::ElementStorage::bits32;
    }
    EXPECT_EQ(packed, 4u) << plan.summary();  // wq, wk, gate and up; the gains stay 32-bit
    const auto errors = kernel_tests::errors_on_held_parameters(g, storage, kernel_tests::test_caps(false), 76);
    for (size_t o = 0; o < errors.size(); ++o) EXPECT_LE(errors[o], 1e-5) << dtype_name(storage) << " output " << o;
  }
}

TEST(NormalizedProduct, OnlyRowsOfAnUntransposedOperandNormalize) {
  Graph g;
  Tensor x = g.input("x", {8, 16});
  const int32_t norm = g.rms_norm(x, g.input("gain", {16}), 1e-5).id;
  const Tensor normed = g.tensor(norm);
  EXPECT_TRUE(compile::normalizes_product_rows(g, g.node(g.matmul(normed, g.input("w", {4, 16}), false, true).id), norm));
  EXPECT_TRUE(compile::normalizes_product_rows(g, g.node(g.matmul(normed, g.input("v", {16, 4})).id), norm));
  // As B, or read transposed (its rows would be the product's K), the norm keeps its kernel.
  EXPECT_FALSE(compile::normalizes_product_rows(g, g.node(g.matmul(g.input("a", {3, 16}), normed, false, true).id), norm));
  EXPECT_FALSE(compile::normalizes_product_rows(g, g.node(g.matmul(normed, g.input("u", {8, 5}), true, false).id), norm));
  // A layer norm is not an RMSNorm.
  const int32_t layer = g.layer_norm(x, g.input("lg", {16}), g.input("lb", {16}), 1e-5).id;
  EXPECT_FALSE(compile::normalizes_product_rows(g, g.node(g.matmul(g.tensor(layer), g.input("z", {4, 16}), false, true).id), layer));
}

}  // namespace
}  // namespace meganeura
