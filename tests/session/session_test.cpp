// Session behaviour: fusion, memory sharing, the shader cache, errors, shared parameters,
// checkpoints, shader dumps and profiling.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "compile/grouping.h"
#include "compile/memory_plan.h"
#include "gpu/transfer.h"
#include "runtime/session_impl.h"
#include "session/session_test_util.h"

namespace meganeura {
namespace {

using testing_support::random_feeds;
using testing_support::relative_error;

// Three identical layers: the optimizer may fuse, the planner reuses space, codegen shares shaders.
Graph layered_mlp(int64_t batch) {
  Graph g;
  Tensor h = g.input("x", {batch, 16});
  for (int layer = 0; layer < 3; ++layer) {
    const std::string prefix = "layer" + std::to_string(layer);
    auto w = g.parameter(prefix + ".weight", {16, 16}, Init::kaiming());
    auto b = g.parameter(prefix + ".bias", {16}, Init::uniform(-0.1, 0.1));
    h = g.relu(g.matmul(h, w, false, true) + b) + h;
  }
  auto head = g.parameter("head.weight", {4, 16}, Init::xavier());
  g.set_outputs({g.softmax(g.matmul(h, head, false, true))});
  return g;
}

SessionOptions with_fusion(bool optimize, bool fuse) {
  SessionOptions options;
  options.optimize = optimize;
  options.fuse = fuse;
  options.seed = 9;
  return options;
}

TEST(Session, FusedAndUnfusedAgree) {
  const Graph g = layered_mlp(6);
  const auto feeds = random_feeds(g, 1);
  Session unfused = build_inference_session(g, with_fusion(false, false));
  Session fused = build_inference_session(g, with_fusion(false, true));
  Session optimized = build_inference_session(g, with_fusion(true, true));
  for (Session* s : {&unfused, &fused, &optimized}) {
    testing_support::apply(*s, feeds);
    s->run();
  }
  const auto expected = unfused.read_output(0);
  std::vector<double> reference(expected.begin(), expected.end());
  EXPECT_LE(relative_error(fused.read_output(0), reference), 1e-6);
  EXPECT_LE(relative_error(optimized.read_output(0), reference), 1e-6);
  EXPECT_LT(fused.dispatch_count(), unfused.dispatch_count());
  // matmul + bias + relu + residual is one kernel per layer.
  size_t matmul_kernels = 0;
  for (const std::string& label : fused.kernel_labels()) {
    if (label.find("matmul") != std::string::npos && label.find("relu") != std::string::npos) ++matmul_kernels;
  }
  EXPECT_EQ(matmul_kernels, 3u) << fused.plan_summary();
}

TEST(Session, IdenticalLayersShareShadersAndASecondBuildHitsTheCache) {
  const Graph g = layered_mlp(4);
  Session first = build_inference_session(g, with_fusion(false, true));
  const ShaderBuildStats a = first.build_stats();
  EXPECT_LT(a.unique_shaders, a.kernels);  // the three layers share one matmul shader
  Session second = build_inference_session(g, with_fusion(false, true));
  const ShaderBuildStats b = second.build_stats();
  EXPECT_EQ(b.compiled, 0u);
  EXPECT_EQ(b.cache_hits, b.unique_shaders);
}

TEST(Session, MemoryPlanNeverOverlapsLiveTensors) {
  // A chain where each intermediate dies soon: the arena must be far smaller than their sum, and
  // poisoning every freed range right after its last reader does not change the result.
  Graph g;
  Tensor h = g.input("x", {32, 64});
  for (int i = 0; i < 8; ++i) h = g.tanh(g.softmax(h * 1.5) * 4.0 + h);
  g.set_outputs({g.sum(h, 1)});
  SessionOptions options = with_fusion(false, true);
  Session session = build_inference_session(g, options);
  const auto& impl = session.impl();
  const compile::Plan& plan = impl.plan;
  EXPECT_LT(plan.arena_bytes * 3, plan.unshared_bytes) << plan.summary();

  // Lifetimes of arena values from the plan: first writer, last reader.
  std::map<int32_t, compile::Lifetime> lifetimes;
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const auto& kernel = plan.kernels[k];
    if (plan.storage[kernel.root].buffer == plan.arena_buffer) {
      lifetimes[kernel.root] = {plan.storage[kernel.root].bytes, static_cast<int>(k), static_cast<int>(k)};
    }
    for (int32_t input : kernel.inputs) {
      int32_t owner = input;
      while (compile::is_alias(plan.graph, plan.graph.node(owner), true)) owner = plan.graph.node(owner).inputs[0];
      auto it = lifetimes.find(owner);
      if (it != lifetimes.end()) it->second.last = static_cast<int>(k);
    }
  }
  for (const auto& [a, la] : lifetimes) {
    for (const auto& [b, lb] : lifetimes) {
      if (a < b) {
        EXPECT_FALSE(compile::conflicts(la, plan.storage[a].offset, lb, plan.storage[b].offset)) << a << " " << b;
      }
    }
  }

  const auto feeds = random_feeds(g, 2);
  Session reference_session = build_inference_session(g, options);
  testing_support::apply(reference_session, feeds);
  reference_session.run();

  testing_support::apply(session, feeds);
  gpu::Buffer& arena = *impl.buffers[plan.arena_buffer];
  gpu::fill(arena, 0x7fc00000u);
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    gpu::Recording one(impl.context);
    one.dispatch(*impl.kernel_pipelines[k], *impl.descriptor_sets[k], {}, plan.kernels[k].workgroups);
    one.finish();
    one.run();
    for (const auto& [node, life] : lifetimes) {
      if (life.last == static_cast<int>(k)) gpu::fill(arena, 0x7fc00000u, plan.storage[node].offset, plan.storage[node].bytes);
    }
  }
  const auto expected = reference_session.read_output(0);
  EXPECT_EQ(session.read_output(0), expected);
}

TEST(Session, BadInputsGiveDocumentedErrors) {
  Graph g;
  auto x = g.input("x", {32, 784});
  auto ids = g.input("ids", {4}, DType::i32);
  auto w = g.parameter("w", {784, 3});
  g.set_outputs({g.matmul(x, w), g.embedding(g.reshape(w, {784, 3}), ids)});
  Session session = build_inference_session(g, with_fusion(false, true));
  std::vector<float> short_data(784, 1.0f);
  try {
    session.set_input("x", std::span<const float>(short_data));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "set_input(\"x\"): expected 25088 floats for shape [32, 784], got 784");
  }
  EXPECT_THROW(session.set_input("nope", std::span<const float>(short_data)), Error);
  EXPECT_THROW(session.set_input("x", std::span<const int32_t>(std::vector<int32_t>(25088))), Error);
  EXPECT_THROW(session.set_input("ids", std::span<const float>(std::vector<float>(4))), Error);
  EXPECT_THROW(session.set_parameter("w", std::span<const float>(short_data)), Error);
  EXPECT_THROW(session.set_parameter("x", std::span<const float>(short_data)), Error);
  EXPECT_THROW(session.read_gradient("w"), Error);
  EXPECT_THROW(session.read_output(5), Error);
  EXPECT_THROW(session.read_output("missing"), Error);
  EXPECT_THROW(session.read_loss(), Error);  // not a scalar
  EXPECT_THROW(session.set_optimizer(OptimizerSpec::sgd(0.1)), Error);

  // Ops whose kernels are not in yet fail naming the op (pooling, until its kernels land).
  Graph conv;
  auto image = conv.input("image", {1, 1, 4, 4});
  conv.set_outputs({conv.max_pool2d(image)});
  try {
    build_inference_session(conv, with_fusion(false, true));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_pool2d"), std::string::npos) << e.what();
  }

  Graph train;
  auto input = train.input("x", {2, 3});
  auto weight = train.parameter("w", {3, 1}, Init::ones());
  train.set_outputs({train.mean_all(train.matmul(input, weight))});
  SessionOptions options = with_fusion(false, true);
  Session trainer = build_session(train, options);
  EXPECT_THROW(trainer.step(), Error);  // no optimizer yet
  EXPECT_THROW(trainer.set_learning_rate(0.1), Error);
}

TEST(Session, SharedParametersAcrossSessions) {
  // A batch-8 "prefill" and a batch-1 "decode" session over the same weights.
  auto build = [](int64_t batch) {
    Graph g;
    auto x = g.input("x", {batch, 5});
    auto w = g.parameter("w", {3, 5}, Init::kaiming());
    g.set_outputs({g.matmul(x, w, false, true)});
    return g;
  };
  const Graph big = build(8), small = build(1);
  Session prefill = build_inference_session(big, with_fusion(false, true));
  SessionOptions options = with_fusion(false, true);
  options.share_parameters_with = &prefill;
  options.seed = 12345;  // ignored for shared parameters
  Session decode = build_inference_session(small, options);
  EXPECT_EQ(decode.memory_summary().parameters, 0u);
  EXPECT_EQ(decode.memory_summary().shared_parameters, 60u);
  std::vector<float> w(15);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * static_cast<float>(i) - 0.7f;
  prefill.set_parameter("w", std::span<const float>(w));
  EXPECT_EQ(decode.read_parameter("w"), w);
  std::vector<float> row = {1, -2, 0.5f, 3, -1};
  decode.set_input("x", std::span<const float>(row));
  decode.run();
  const auto out = decode.read_output(0);
  for (int j = 0; j < 3; ++j) {
    double expected = 0;
    for (int k = 0; k < 5; ++k) expected += row[k] * w[j * 5 + k];
    EXPECT_NEAR(out[j], expected, 1e-5);
  }
}

TEST(Session, OutputsHandedToAnotherSessionsInputsOnTheGpu) {
  // A "prefill" producing two values (one f32, one i32) and a "decode" consuming them as inputs.
  Graph first;
  auto x = first.input("x", {3, 4});
  first.set_outputs({first.mul(x, first.scalar(2.0)), first.argmax(x, 1)});
  Graph second;
  auto z = second.input("z", {3, 4});
  auto ids = second.input("ids", {3}, DType::i32);
  second.set_outputs({second.add(z, second.scalar(1.0)), second.cast(ids, DType::f32)});
  Session producer = build_inference_session(first);
  Session consumer = build_inference_session(second);
  const std::vector<float> values = {0.5f, -1, 2, 3, 7, -4, 0.25f, 1, -2, 9, -8, 4};
  producer.set_input("x", std::span<const float>(values));
  producer.run();
  consumer.set_inputs_from_outputs(producer, {{0, "z"}, {1, "ids"}});
  consumer.run();
  const std::vector<float> out = consumer.read_output(0);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_FLOAT_EQ(out[i], 2 * values[i] + 1) << i;
  EXPECT_EQ(consumer.read_output(1), (std::vector<float>{3, 0, 1}));

  auto expect_error = [&](const std::vector<std::pair<size_t, std::string>>& pairs, const std::string& part) {
    try {
      consumer.set_inputs_from_outputs(producer, pairs);
      FAIL() << "accepted a bad pair; expected an error naming " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error({{2, "z"}}, "the source session has 2 outputs");
  expect_error({{0, "nope"}}, "no input of that name");
  expect_error({{1, "z"}}, "they must match");
  // A failed call moves nothing: the check of every pair comes before any copy.
  producer.set_input("x", std::vector<float>(12, 100.0f));
  producer.run();
  expect_error({{0, "z"}, {1, "z"}}, "they must match");
  consumer.run();
  EXPECT_FLOAT_EQ(consumer.read_output(0)[0], 2 * values[0] + 1);
}

TEST(Session, ParametersRoundTripThroughSafetensorsAndHalfPrecision) {
  const Graph g = layered_mlp(2);
  Session a = build_inference_session(g, with_fusion(false, true));
  SessionOptions other = with_fusion(false, true);
  other.seed = 77;
  Session b = build_inference_session(g, other);
  EXPECT_NE(a.read_parameter("layer0.weight"), b.read_parameter("layer0.weight"));
  const auto path = std::filesystem::path(::testing::TempDir()) / "session_round_trip.safetensors";
  a.save_parameters(path.string());
  b.load_parameters(path.string());
  for (const std::string& name : a.parameter_names()) EXPECT_EQ(a.read_parameter(name), b.read_parameter(name)) << name;

  // f16 bits 0x3C00 = 1.0, 0xC000 = -2.0; bf16 0x3F80 = 1.0, 0x4040 = 3.0.
  std::vector<uint16_t> half(16, 0x3C00);
  half[3] = 0xC000;
  b.set_parameter("layer0.bias", std::span<const uint16_t>(half), DType::f16);
  auto values = b.read_parameter("layer0.bias");
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[3], -2.0f);
  std::vector<uint16_t> brain(16, 0x3F80);
  brain[5] = 0x4040;
  b.set_parameter("layer0.bias", std::span<const uint16_t>(brain), DType::bf16);
  values = b.read_parameter("layer0.bias");
  EXPECT_EQ(values[5], 3.0f);
  EXPECT_THROW(b.set_parameter("layer0.bias", std::span<const uint16_t>(brain), DType::f32), Error);
}

TEST(Session, DumpsShadersWhenAsked) {
  const auto folder = std::filesystem::path(::testing::TempDir()) / "meganeura-dumped-shaders";
  std::filesystem::remove_all(folder);
  setenv("MEGANEURA_DUMP_SHADERS", folder.c_str(), 1);
  Graph g;
  auto x = g.input("x", {3, 3});
  g.set_outputs({g.exp(x) + 1.0});
  Session session = build_inference_session(g, with_fusion(false, true));
  unsetenv("MEGANEURA_DUMP_SHADERS");
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    ++files;
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("#version 450"), std::string::npos);
    EXPECT_NE(text.find("exp("), std::string::npos);
  }
  EXPECT_EQ(files, 1u);
}

TEST(Session, ProfileGivesOneTimePerDispatch) {
  const Graph g = layered_mlp(4);
  Session session = build_inference_session(g, with_fusion(false, true));
  testing_support::apply(session, random_feeds(g, 3));
  const auto times = session.profile(2);
  ASSERT_EQ(times.size(), session.dispatch_count());
  EXPECT_EQ(times[0].label, session.kernel_labels()[0]);
  for (const auto& t : times) EXPECT_GE(t.microseconds, 0.0);
}

TEST(Session, MlpTrainingStepIsOneRecordingWithFewBarriers) {
  Graph g;
  auto x = g.input("x", {32, 784});
  auto labels = g.input("labels", {32}, DType::i32);
  auto w1 = g.parameter("fc1.weight", {128, 784}, Init::kaiming());
  auto b1 = g.parameter("fc1.bias", {128});
  auto w2 = g.parameter("fc2.weight", {10, 128}, Init::kaiming());
  auto b2 = g.parameter("fc2.bias", {10});
  auto logits = g.matmul(g.relu(g.matmul(x, w1, false, true) + b1), w2, false, true) + b2;
  g.set_outputs({g.cross_entropy_loss(logits, labels)});
  SessionOptions options;
  options.optimizer = OptimizerSpec::sgd(0.1);
  Session session = build_session(g, options);
  testing_support::apply(session, random_feeds(g, 5, 10));
  session.step();
  const float first = session.read_loss();
  session.step_n(20);
  EXPECT_LT(session.read_loss(), first);  // same batch: the loss falls
  EXPECT_LE(session.barrier_count(), session.dispatch_count());
  EXPECT_LT(session.memory_summary().arena, 8u << 20);
  std::cout << session.plan_summary() << session.memory_summary().to_string() << "\n";
}

TEST(Session, KvCacheIsPersistentStateUpdatedInPlace) {
  Graph g;
  auto cache = g.input("cache", {1, 2, 5, 3});
  auto update = g.input("update", {1, 2, 2, 3});
  auto offset = g.input("offset", {1}, DType::i32);
  auto written = g.kv_cache_write(cache, update, offset);
  g.set_outputs({g.sum(written, 2), written});
  Session session = build_inference_session(g, with_fusion(false, true));
  auto feeds = random_feeds(g, 8);
  testing_support::apply(session, feeds);
  std::vector<double> expected_cache = feeds.reference["cache"];
  for (int32_t position : {0, 3}) {
    feeds = random_feeds(g, 20 + position);
    session.set_input("update", std::span<const float>(feeds.floats["update"]));
    session.set_input("offset", std::span<const int32_t>(std::vector<int32_t>{position}));
    session.run();  // the cache input is not set again: the previous write persists
    feeds.reference["cache"] = expected_cache;
    feeds.reference["offset"] = {static_cast<double>(position)};
    const auto values = reference::run(g, feeds.reference);
    expected_cache = values[written.id];
    EXPECT_LE(relative_error(session.read_output(1), expected_cache), 1e-6) << "offset " << position;
    EXPECT_LE(relative_error(session.read_output(0), values[g.outputs()[0]]), 1e-6) << "offset " << position;
  }
  EXPECT_EQ(session.impl().plan.buffers[session.impl().plan.storage[cache.id].buffer].kind, compile::BufferKind::state);
  EXPECT_EQ(session.memory_summary().state, 2u * 5 * 3 * 4);
}

}  // namespace
}  // namespace meganeura
