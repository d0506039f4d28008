// The cooperative-matrix matmul form: when compile selects it (device caps, operand types, shapes),
// and that its GLSL compiles with shaderc for every transpose, ragged sizes, a fused epilogue and
// f16 weights. Lavapipe has no cooperative matrix, so nothing here runs the form: the benchmark
// suite runs it on a GPU host, after the numeric self-test of runtime/cooperative_self_test.h.
#include <gtest/gtest.h>

#include <string>

#include "codegen/codegen.h"
#include "compile/cooperative_matmul.h"
#include "gpu/shader_compiler.h"
#include "kernels/kernel_test_util.h"
#include "meganeura/safetensors.h"
#include "runtime/cooperative_self_test.h"

namespace meganeura {
namespace {

Graph f16_matmul(int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb, DType dtype = DType::f16) {
  Graph g;
  Tensor a = g.input("a", ta ? Shape{batch, k, m} : Shape{batch, m, k}, dtype);
  Tensor b = g.input("b", tb ? Shape{batch, n, k} : Shape{batch, k, n}, dtype);
  g.set_outputs({g.matmul(a, b, ta, tb)});
  return g;
}

// x [rows, in] · weightᵀ + bias, then ReLU: a linear layer whose weight may be stored as 16-bit.
Graph linear_relu(int64_t rows, int64_t in, int64_t out) {
  Graph g;
  Tensor x = g.input("x", {rows, in});
  Tensor w = g.parameter("w", {out, in}, Init::normal(0.0, 0.5));
  Tensor b = g.parameter("b", {out}, Init::normal(0.0, 0.5));
  g.set_outputs({g.relu(g.matmul(x, w, false, true) + b)});
  return g;
}

compile::CompileOptions f16_weights() {
  compile::CompileOptions options;
  options.weight_storage = DType::f16;
  return options;
}

compile::CompileOptions bf16_weights() {
  compile::CompileOptions options;
  options.weight_storage = DType::bf16;
  return options;
}

const compile::Kernel* matmul_kernel(const compile::Plan& plan) {
  for (const compile::Kernel& kernel : plan.kernels) {
    if (kernel.archetype == compile::Archetype::matmul) return &kernel;
  }
  return nullptr;
}

TEST(CooperativeMatmul, SelectedOnlyWhereTheDeviceAndTheOperandsAllowIt) {
  const compile::DeviceCaps gpu = compile::DeviceCaps::default_for_tests();
  auto selected = [](const Graph& graph, const compile::DeviceCaps& caps, compile::CompileOptions options = {}) {
    const compile::Plan plan = compile::compile(graph, caps, options);
    const compile::Kernel* kernel = matmul_kernel(plan);
    EXPECT_NE(kernel, nullptr);
    return kernel != nullptr && kernel->cooperative_matrix;
  };
  EXPECT_TRUE(selected(f16_matmul(1, 256, 192, 160, false, false), gpu));
  // Without the capability, on lavapipe, with a small shared memory or 64-wide subgroups: scalar.
  compile::DeviceCaps no_coop = gpu;
  no_coop.supports_cooperative_matrix = false;
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false), no_coop));
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false), compile::DeviceCaps::lavapipe_like()));
  compile::DeviceCaps small = gpu;
  small.max_shared_memory_bytes = 32 * 1024;
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false), small));
  compile::DeviceCaps wave64 = gpu;
  wave64.subgroup_size = wave64.min_subgroup_size = wave64.max_subgroup_size = 64;
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false), wave64));
  compile::DeviceCaps no_shape = gpu;
  no_shape.cooperative_matrix_shapes = {no_shape.cooperative_matrix_shapes[1]};  // 16x8x16 only
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false), no_shape));
  // f32 operands keep f32 precision; one-row products keep the GEMV.
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false, DType::f32), gpu));
  EXPECT_FALSE(selected(f16_matmul(1, 1, 192, 160, false, true), gpu));
  // f32 weights stored as f16 take it (activations rounded to f16); bf16 weights do not.
  EXPECT_FALSE(selected(linear_relu(64, 96, 80), gpu));
  EXPECT_TRUE(selected(linear_relu(64, 96, 80), gpu, f16_weights()));
  EXPECT_FALSE(selected(linear_relu(64, 96, 80), gpu, bf16_weights()));
  // Where the device reports its compute units, the form needs tiles for half of them: 2 × 2 tiles
  // of 128 × 128 do not fill 132 units, 12 × 11 (or a batch of them) do.
  compile::DeviceCaps units = gpu;
  units.compute_units = 132;
  EXPECT_FALSE(selected(f16_matmul(1, 256, 192, 160, false, false), units));
  EXPECT_TRUE(selected(f16_matmul(1, 1536, 1408, 64, false, false), units));
  EXPECT_FALSE(selected(f16_matmul(1, 1536, 640, 64, false, false), units));  // 60 tiles
  EXPECT_TRUE(selected(f16_matmul(17, 256, 192, 64, false, false), units));   // 68 tiles
  EXPECT_FALSE(selected(linear_relu(128, 576, 1536), units, f16_weights()));
}

TEST(CooperativeMatmul, TakesTheProductsScalarFormsWouldSplit) {
  // 48 scalar tiles over K = 160 would split K in two; the tensor-core form does not split, and
  // leaves the partial-sum and counter bindings out.
  const compile::Plan plan = compile::compile(f16_matmul(1, 256, 192, 160, false, false), compile::DeviceCaps::default_for_tests());
  const compile::Kernel* kernel = matmul_kernel(plan);
  ASSERT_NE(kernel, nullptr);
  ASSERT_TRUE(kernel->cooperative_matrix);
  EXPECT_EQ(kernel->split_k, 1u);
  EXPECT_EQ(kernel->bindings.size(), kernel->inputs.size() + 1);
  compile::DeviceCaps no_coop = compile::DeviceCaps::default_for_tests();
  no_coop.supports_cooperative_matrix = false;
  EXPECT_EQ(matmul_kernel(compile::compile(f16_matmul(1, 256, 192, 160, false, false), no_coop))->split_k, 2u);
}

TEST(CooperativeMatmul, DispatchCoversRaggedTilesAndBatches) {
  const compile::Plan plan = compile::compile(f16_matmul(3, 130, 300, 40, true, false), compile::DeviceCaps::default_for_tests());
  const compile::Kernel* kernel = matmul_kernel(plan);
  ASSERT_NE(kernel, nullptr);
  ASSERT_TRUE(kernel->cooperative_matrix);
  using Tiles = compile::CooperativeMatmulTiles;
  EXPECT_EQ(kernel->local_size, (std::array<uint32_t, 3>{Tiles::invocations, 1, 1}));
  EXPECT_EQ(kernel->workgroups, (std::array<uint32_t, 3>{3, 2, 3}));  // ceil(300/128), ceil(130/128), batch
  EXPECT_LE(compile::cooperative_matmul_shared_bytes(true, true), 48u * 1024);
}

// Every variant's GLSL compiles (shaderc accepts GL_NV_cooperative_matrix everywhere).
TEST(CooperativeMatmul, ShadersCompileForEveryVariant) {
  const compile::DeviceCaps gpu = compile::DeviceCaps::default_for_tests();
  gpu::ShaderCompiler compiler;
  auto compile_all = [&](const Graph& graph, const compile::CompileOptions& options, const std::string& what) {
    const compile::Plan plan = compile::compile(graph, gpu, options);
    const compile::Kernel* kernel = matmul_kernel(plan);
    ASSERT_NE(kernel, nullptr) << what;
    ASSERT_TRUE(kernel->cooperative_matrix) << what;
    const std::string glsl = codegen::generate(plan.graph, *kernel, gpu);
    EXPECT_NE(glsl.find("coopMatMulAddNV"), std::string::npos) << what;
    EXPECT_NO_THROW(compiler.compile(glsl, {.name = "coop " + what})) << what << "\n" << glsl;
  };
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const std::string which = std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
      compile_all(f16_matmul(2, 256, 192, 160, ta, tb), {}, "aligned " + which);
      compile_all(f16_matmul(1, 130, 37, 21, ta, tb), {}, "ragged " + which);  // scalar fetches
    }
  }
  // Epilogue (bias + ReLU through shared memory) and f16 weights: aligned and odd K.
  compile_all(linear_relu(64, 96, 80), f16_weights(), "f16 weights");
  compile_all(linear_relu(40, 35, 24), f16_weights(), "f16 weights, odd K");
}

// On the CI device nothing selects the form, so no session runs the self-test; the scalar kernel
// reads the f16 inputs, stored as packed f16, and matches the reference on the f16-rounded values.
TEST(CooperativeMatmul, LavapipeSessionsUseTheScalarKernelAndSkipTheSelfTest) {
  for (bool tb : {false, true}) {
    Graph g = f16_matmul(2, 40, 33, 21, false, tb);
    reference::Feeds feeds = kernel_tests::random_inputs(g, 4);
    for (auto& [name, values] : feeds) {
      for (double& v : values) v = f16_to_f32(f32_to_f16(static_cast<float>(v)));
    }
    reference::Options reference_options;
    reference_options.training = false;
    const auto expected = reference::run(g, feeds, reference_options);
    Session session = build_inference_session(g, {.optimize = false});
    EXPECT_EQ(session.impl().plan.storage[g.find("a")].element, compile::ElementStorage::packed_f16);
    kernel_tests::apply(session, g, feeds);
    session.run();
    EXPECT_LT(testing_support::relative_error(session.read_output(0), expected[g.outputs()[0]]), 1e-6);
    for (const compile::Kernel& kernel : session.impl().plan.kernels) EXPECT_FALSE(kernel.cooperative_matrix);
  }
  if (!gpu::Context::shared()->caps().supports_cooperative_matrix) {
    EXPECT_EQ(runtime::cooperative_self_test_result().outcome, runtime::CooperativeSelfTest::Outcome::not_run);
    EXPECT_EQ(runtime::to_string(runtime::cooperative_self_test_result()), "not run");
  }
}

// The self-test's small products take the form on a device of many compute units, where a session
// would leave them to the scalar kernels (too few tiles): the self-test checks the form's numbers.
TEST(CooperativeMatmul, SelfTestProductsTakeTheFormOnLargeDevices) {
  compile::DeviceCaps device = compile::DeviceCaps::default_for_tests();
  device.compute_units = 132;
  const Graph g = runtime::cooperative_self_test_graph();
  size_t cooperative = 0;
  for (const compile::Kernel& kernel : compile::compile(g, runtime::cooperative_self_test_caps(device)).kernels) {
    cooperative += kernel.cooperative_matrix;
  }
  EXPECT_EQ(cooperative, 2u);
  for (const compile::Kernel& kernel : compile::compile(g, device).kernels) EXPECT_FALSE(kernel.cooperative_matrix);
}

// A device that claims the feature but failed the self-test gets the scalar kernel: the build
// compiles again without the cooperative form, and the session computes the right product.
TEST(CooperativeMatmul, FailedSelfTestFallsBackToTheScalarKernel) {
  runtime::CooperativeSelfTest failed;
  failed.outcome = runtime::CooperativeSelfTest::Outcome::failed;
  failed.detail = "relative error 0.5 against the scalar kernel (limit 1e-03)";
  const runtime::CooperativeSelfTest before = runtime::cooperative_self_test_result();
  runtime::set_cooperative_self_test_result(failed);

  // The CI device's caps, claiming a cooperative-matrix device's subgroups and shapes.
  compile::DeviceCaps caps = gpu::Context::shared()->caps();
  const compile::DeviceCaps gpu_like = compile::DeviceCaps::default_for_tests();
  caps.subgroup_size = caps.min_subgroup_size = caps.max_subgroup_size = 32;
  caps.max_shared_memory_bytes = std::max(caps.max_shared_memory_bytes, gpu_like.max_shared_memory_bytes);
  caps.supports_cooperative_matrix = true;
  caps.cooperative_matrix_shapes = gpu_like.cooperative_matrix_shapes;
  const Graph g = f16_matmul(1, 64, 48, 32, false, true);
  ASSERT_TRUE(matmul_kernel(compile::compile(g, caps))->cooperative_matrix);  // what compile alone picks

  reference::Feeds feeds = kernel_tests::random_inputs(g, 6);
  for (auto& [name, values] : feeds) {
    for (double& v : values) v = f16_to_f32(f32_to_f16(static_cast<float>(v)));
  }
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(g, feeds, reference_options);
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(g, options, caps, false);
  EXPECT_FALSE(matmul_kernel(session.impl().plan)->cooperative_matrix);
  kernel_tests::apply(session, g, feeds);
  session.run();
  EXPECT_LT(testing_support::relative_error(session.read_output(0), expected[g.outputs()[0]]), 1e-6);
  EXPECT_EQ(runtime::to_string(runtime::cooperative_self_test_result()),
            "failed: relative error 0.5 against the scalar kernel (limit 1e-03)");
  runtime::set_cooperative_self_test_result(before);
}

}  // namespace
}  // namespace meganeura
