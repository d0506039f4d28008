// The hand-written kernels of test_shaders.h run through the whole GPU layer (compile, pipeline,
// bindings, recording, replay) and are checked against CPU results on random data.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/disk_cache.h"
#include "gpu/pipeline.h"
#include "gpu/recording.h"
#include "gpu/shader_compiler.h"
#include "gpu/transfer.h"
#include "meganeura/error.h"
#include "test_shaders.h"

namespace meganeura::gpu {
namespace {

using testing::push_bytes;
using testing::random_floats;

std::vector<uint32_t> compile(const char* source, const std::string& name) {
  static ShaderCompiler compiler;  // the suite's cache folder (MEGANEURA_CACHE_DIR)
  return compiler.compile(source, {.name = name});
}

template <class T>
void put(const Buffer& buffer, const std::vector<T>& values, uint64_t offset = 0) {
  upload(buffer, offset, std::as_bytes(std::span(values)));
}

std::vector<float> get(const Buffer& buffer, size_t count, uint64_t offset = 0) {
  std::vector<float> values(count);
  download(buffer, offset, std::as_writable_bytes(std::span(values)));
  return values;
}

double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

TEST(GpuKernels, VectorAddWritesEveryElementAndNothingElse) {
  auto context = Context::shared();
  const uint32_t count = 1000;  // not a multiple of the workgroup size
  const float scale = 0.75f;
  const auto a = random_floats(count, 1), b = random_floats(count, 2);
  Buffer in_a(context, count * 4, MemoryKind::DeviceLocal, "a");
  Buffer in_b(context, count * 4, MemoryKind::DeviceLocal, "b");
  // The output is bound at an aligned offset inside a larger poisoned buffer: guards on both sides.
  const uint64_t guard = std::max<uint64_t>(context->caps().min_storage_buffer_offset_alignment, 64);
  Buffer out(context, guard + count * 4 + guard, MemoryKind::DeviceLocal, "out");
  put(in_a, a);
  put(in_b, b);
  fill(out, testing::kPoison);

  const auto spirv = compile(testing::kVectorAdd, "vector_add");
  Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = 8,
                              .specialization = {{0, 64}}, .label = "vector_add"});
  DescriptorSet bindings(pipeline, {{&in_a}, {&in_b}, {&out, guard, count * 4}});
  Recording recording(context);
  recording.dispatch(pipeline, bindings, push_bytes(count, scale), {(count + 63) / 64, 1, 1});
  recording.finish();
  recording.run();

  const auto all = get(out, out.size() / 4);
  for (uint32_t i = 0; i < all.size(); ++i) {
    const int64_t element = int64_t(i) - int64_t(guard / 4);
    if (element < 0 || element >= count) {
      EXPECT_TRUE(testing::is_poison(all[i])) << "guard element " << i << " was overwritten";
    } else {
      // GPUs may fuse the multiply-add (one rounding instead of two): allow an error relative to the
      // size of the terms, not of the possibly cancelling sum.
      const double want = double(a[element]) + double(scale) * b[element];
      const double terms = std::abs(double(a[element])) + std::abs(double(scale) * b[element]);
      EXPECT_NEAR(all[i], want, 3e-7 * terms) << "element " << element;
    }
  }
}

TEST(GpuKernels, RowSumReductionMatchesTheCpu) {
  auto context = Context::shared();
  const uint32_t rows = 37, columns = 1000;
  const auto x = random_floats(size_t(rows) * columns, 3);
  Buffer in(context, x.size() * 4, MemoryKind::DeviceLocal, "x");
  Buffer sums(context, (rows + 3) * 4, MemoryKind::HostVisible, "sums");
  put(in, x);
  fill(sums, testing::kPoison);
  Pipeline pipeline(context, {.spirv = compile(testing::kRowSum, "row_sum"), .storage_buffers = 2,
                              .push_constant_bytes = 8, .specialization = {{0, 128}}, .label = "row_sum"});
  DescriptorSet bindings(pipeline, {{&in}, {&sums}});
  Recording recording(context);
  recording.dispatch(pipeline, bindings, push_bytes(rows, columns), {rows, 1, 1});
  recording.finish();
  recording.run();

  std::vector<double> want(rows, 0.0);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < columns; ++c) want[r] += x[size_t(r) * columns + c];
  }
  const auto got = get(sums, rows + 3);
  EXPECT_LT(relative_error({got.begin(), got.begin() + rows}, want), 1e-5);
  for (uint32_t r = rows; r < rows + 3; ++r) EXPECT_TRUE(testing::is_poison(got[r])) << "row " << r;
}

// c = a b through shared-memory tiles, for two tile sizes (specialization constants).
TEST(GpuKernels, TiledMatmulMatchesTheCpu) {
  auto context = Context::shared();
  const uint32_t m = 37, n = 29, k = 45;
  const auto a = random_floats(size_t(m) * k, 4), b = random_floats(size_t(k) * n, 5);
  std::vector<double> want(size_t(m) * n, 0.0);
  for (uint32_t i = 0; i < m; ++i) {
    for (uint32_t j = 0; j < n; ++j) {
      for (uint32_t p = 0; p < k; ++p) want[i * n + j] += double(a[i * k + p]) * b[p * n + j];
    }
  }
  Buffer in_a(context, a.size() * 4, MemoryKind::DeviceLocal, "a");
  Buffer in_b(context, b.size() * 4, MemoryKind::DeviceLocal, "b");
  Buffer out(context, want.size() * 4 + 64, MemoryKind::DeviceLocal, "c");
  put(in_a, a);
  put(in_b, b);
  const auto spirv = compile(testing::kTiledMatmul, "tiled_matmul");
  for (uint32_t tile : {8u, 16u}) {
    fill(out, testing::kPoison);
    Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = 12,
                                .specialization = {{0, tile}}, .label = "tiled_matmul"});
    DescriptorSet bindings(pipeline, {{&in_a}, {&in_b}, {&out}});
    Recording recording(context);
    recording.dispatch(pipeline, bindings, push_bytes(m, n, k), {(n + tile - 1) / tile, (m + tile - 1) / tile, 1});
    recording.finish();
    recording.run();
    const auto got = get(out, want.size() + 16);
    EXPECT_LT(relative_error({got.begin(), got.begin() + want.size()}, want), 1e-6) << "tile " << tile;
    for (size_t i = want.size(); i < got.size(); ++i) EXPECT_TRUE(testing::is_poison(got[i])) << "tile " << tile;
  }
}

// A two-dispatch sequence with barriers, recorded once and replayed 50 times in two submissions:
// values += delta; copy values → snapshot. Integers as floats keep the sums exact.
TEST(GpuRecording, ReplayingManyTimesAccumulates) {
  auto context = Context::shared();
  const uint32_t count = 300;
  std::vector<float> values(count), delta(count);
  std::mt19937 rng(6);
  for (uint32_t i = 0; i < count; ++i) {
    values[i] = float(int(rng() % 200) - 100);
    delta[i] = float(int(rng() % 17) - 8);
  }
  Buffer values_buffer(context, count * 4, MemoryKind::DeviceLocal, "values");
  Buffer delta_buffer(context, count * 4, MemoryKind::DeviceLocal, "delta");
  Buffer snapshot(context, count * 4, MemoryKind::HostVisible, "snapshot");
  put(values_buffer, values);
  put(delta_buffer, delta);
  fill(snapshot, testing::kPoison);
  Pipeline pipeline(context, {.spirv = compile(testing::kAccumulate, "accumulate"), .storage_buffers = 2,
                              .push_constant_bytes = 4, .label = "accumulate"});
  DescriptorSet bindings(pipeline, {{&values_buffer}, {&delta_buffer}});
  Recording recording(context);
  recording.dispatch(pipeline, bindings, push_bytes(count), {(count + 63) / 64, 1, 1});
  recording.barrier();
  recording.copy({&values_buffer}, {&snapshot}, "snapshot");
  recording.finish();
  EXPECT_EQ(recording.command_count(), 2u);
  EXPECT_EQ(recording.barrier_count(), 1u);
  EXPECT_THROW(recording.barrier(), Error) << "a finished recording takes no more commands";

  recording.run(1);
  auto got = get(snapshot, count);
  for (uint32_t i = 0; i < count; ++i) ASSERT_EQ(got[i], values[i] + delta[i]) << i;
  recording.run(24);
  recording.submit(25);
  recording.wait();
  got = get(snapshot, count);
  for (uint32_t i = 0; i < count; ++i) ASSERT_EQ(got[i], values[i] + 50 * delta[i]) << i;
}

TEST(GpuRecording, TimestampsGivePositiveDurationsWhenAsked) {
  auto context = Context::shared();
  if (!context->caps().supports_timestamps) GTEST_SKIP() << "the device has no timestamps";
  const uint32_t m = 64, n = 64, k = 64;
  Buffer a(context, m * k * 4, MemoryKind::DeviceLocal, "a");
  Buffer b(context, k * n * 4, MemoryKind::DeviceLocal, "b");
  Buffer c(context, m * n * 4, MemoryKind::DeviceLocal, "c");
  put(a, random_floats(m * k, 8));
  put(b, random_floats(k * n, 9));
  Pipeline pipeline(context, {.spirv = compile(testing::kTiledMatmul, "tiled_matmul"), .storage_buffers = 3,
                              .push_constant_bytes = 12, .specialization = {{0, 8}}, .label = "tiled_matmul"});
  DescriptorSet bindings(pipeline, {{&a}, {&b}, {&c}});
  Recording timed(context, {.timestamps = true});
  timed.dispatch(pipeline, bindings, push_bytes(m, n, k), {n / 8, m / 8, 1}, "first");
  timed.barrier();
  timed.dispatch(pipeline, bindings, push_bytes(m, n, k), {n / 8, m / 8, 1}, "second");
  timed.finish();
  EXPECT_THROW(timed.dispatch_durations_ns(), Error) << "nothing has run yet";
  timed.run(3);
  const auto durations = timed.dispatch_durations_ns();
  ASSERT_EQ(durations.size(), 2u);
  for (uint64_t ns : durations) {
    EXPECT_GT(ns, 0u);
    EXPECT_LT(ns, 10'000'000'000ull);
  }
  EXPECT_EQ(timed.labels(), (std::vector<std::string>{"first", "second"}));

  Recording untimed(context);
  untimed.dispatch(pipeline, bindings, push_bytes(m, n, k), {n / 8, m / 8, 1});
  untimed.finish();
  untimed.run();
  EXPECT_THROW(untimed.dispatch_durations_ns(), Error);
}

TEST(GpuPipeline, BadArgumentsAreErrors) {
  auto context = Context::shared();
  const auto spirv = compile(testing::kVectorAdd, "vector_add");
  std::vector<uint32_t> not_spirv = {1, 2, 3, 4, 5, 6};
  EXPECT_THROW(Pipeline(context, {.spirv = not_spirv, .storage_buffers = 3}), Error);
  EXPECT_THROW(Pipeline(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = 6}), Error);
  const uint32_t too_many = context->caps().max_push_constant_bytes + 4;
  EXPECT_THROW(Pipeline(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = too_many}), Error);

  Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = 8,
                              .specialization = {{0, 64}}, .label = "vector_add"});
  Buffer buffer(context, 1024, MemoryKind::DeviceLocal, "buf");
  try {
    DescriptorSet two(pipeline, {{&buffer}, {&buffer}});
    FAIL() << "two bindings accepted for three";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 2 buffers, the pipeline has 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DescriptorSet(pipeline, {{&buffer}, {&buffer}, {&buffer, 2048}}), Error);
  if (context->caps().min_storage_buffer_offset_alignment > 1) {
    EXPECT_THROW(DescriptorSet(pipeline, {{&buffer}, {&buffer}, {&buffer, 1, 16}}), Error);
  }
  DescriptorSet bindings(pipeline, {{&buffer}, {&buffer}, {&buffer}});
  Recording recording(context);
  EXPECT_THROW(recording.dispatch(pipeline, bindings, push_bytes(1u), {1, 1, 1}), Error);
  EXPECT_THROW(recording.dispatch(pipeline, bindings, push_bytes(1u, 1.0f), {0xffffffffu, 1, 1}),
               Error);
  EXPECT_THROW(recording.run(), Error) << "run before finish";
}

TEST(GpuPipeline, PipelineCacheIsSavedPerDevice) {
  auto context = std::make_shared<Context>();
  {
    Pipeline pipeline(context, {.spirv = compile(testing::kRowSum, "row_sum"), .storage_buffers = 2,
                                .push_constant_bytes = 8, .specialization = {{0, 32}}, .label = "row_sum"});
  }
  context->save_pipeline_cache();
  const auto folder = cache_directory() / "pipelines";
  bool found = false;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(context->device().uuid, 0) == 0 && entry.path().extension() == ".bin") {
      found = true;
      EXPECT_GE(entry.file_size(), 32u) << "a pipeline cache starts with a 32-byte header";
    }
    // Other test processes may be writing their caches into the same folder right now; only this
    // process's temporary files must be gone.
    const std::string own_temporary = ".tmp." + std::to_string(getpid()) + ".";
    EXPECT_EQ(name.find(own_temporary), std::string::npos) << "leftover temporary file " << name;
  }
  EXPECT_TRUE(found) << "no pipeline cache for device " << context->device().uuid << " in " << folder;
  // A second context loads it (a damaged or foreign blob would be dropped, not passed on).
  Context second;
  EXPECT_EQ(second.device().uuid, context->device().uuid);
}

// fill → barrier → accumulate: every replay starts from the filled value, so repeated replays give
// the same result.
TEST(GpuRecording, FillResetsStateAtTheStartOfEveryReplay) {
  auto context = Context::shared();
  const uint32_t count = 130;
  const auto delta = random_floats(count, 13);
  Buffer values(context, count * 4 + 16, MemoryKind::DeviceLocal, "values");
  Buffer delta_buffer(context, count * 4, MemoryKind::DeviceLocal, "delta");
  put(delta_buffer, delta);
  fill(values, testing::kPoison);
  Pipeline pipeline(context, {.spirv = compile(testing::kAccumulate, "accumulate"), .storage_buffers = 2,
                              .push_constant_bytes = 4, .label = "accumulate"});
  DescriptorSet bindings(pipeline, {{&values, 0, count * 4}, {&delta_buffer}});
  const float start = 1.5f;
  uint32_t start_bits;
  std::memcpy(&start_bits, &start, 4);
  Recording recording(context);
  recording.fill({&values, 0, count * 4}, start_bits);
  recording.barrier();
  recording.dispatch(pipeline, bindings, push_bytes(count), {(count + 63) / 64, 1, 1});
  EXPECT_THROW(recording.fill({&values, 2, 8}, 0), Error) << "unaligned offset";
  recording.finish();
  recording.run(3);
  recording.run();
  const auto got = get(values, count + 4);
  for (uint32_t i = 0; i < count; ++i) ASSERT_EQ(got[i], start + delta[i]) << i;
  for (uint32_t i = count; i < count + 4; ++i) EXPECT_TRUE(testing::is_poison(got[i])) << "past the range: " << i;
}

}  // namespace
}  // namespace meganeura::gpu
