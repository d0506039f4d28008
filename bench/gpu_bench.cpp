// bench_gpu — micro-benchmarks of the GPU layer: device-to-device copy bandwidth and the cost of a
// dispatch with and without a barrier after it. Prints one JSON line per workload for bench/run.py.
//
//   build/bin/bench_gpu copy dispatch dispatch_barrier
//
// Optional floors: MEGANEURA_BENCH_PEAK_TBS (memory bandwidth of the card in TB/s).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench_report.h"
#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/pipeline.h"
#include "gpu/recording.h"
#include "gpu/shader_compiler.h"
#include "gpu/transfer.h"
#include "meganeura/error.h"

namespace gpu = meganeura::gpu;

namespace {

// Each invocation copies PER_THREAD vec4s, strided by the workgroup width so that every load of a
// workgroup is contiguous; several independent loads in flight per thread hide memory latency. The
// grid is 2-D so large buffers stay within group-count limits.
const char* kCopyShader = R"(#version 450
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint PER_THREAD = 1;
layout(std430, binding = 0) readonly buffer Src { vec4 src[]; };
layout(std430, binding = 1) writeonly buffer Dst { vec4 dst[]; };
layout(push_constant) uniform Push { uint count; uint row_groups; } p;
void main() {
  uint group = gl_WorkGroupID.y * p.row_groups + gl_WorkGroupID.x;
  uint base = group * gl_WorkGroupSize.x * PER_THREAD + gl_LocalInvocationID.x;
  vec4 v[PER_THREAD];
  for (uint k = 0; k < PER_THREAD; ++k) {
    uint i = base + k * gl_WorkGroupSize.x;
    if (i < p.count) v[k] = src[i];
  }
  for (uint k = 0; k < PER_THREAD; ++k) {
    uint i = base + k * gl_WorkGroupSize.x;
    if (i < p.count) dst[i] = v[k];
  }
}
)";

// The smallest useful dispatch: one invocation increments its own counter.
const char* kTinyShader = R"(#version 450
layout(local_size_x = 1) in;
layout(std430, binding = 0) buffer Counters { uint counters[]; };
layout(push_constant) uniform Push { uint slot; } p;
void main() { counters[p.slot] += 1u; }
)";

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::string card_name() { return gpu::Context::shared()->device().name; }

void emit(const char* workload, double value, const char* unit, double floor, const std::string& check) {
  std::printf("{\"workload\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"floor\": %s, \"card\": \"%s\", "
              "\"check\": \"%s\"}\n",
              workload, value, unit, floor > 0 ? std::to_string(floor).c_str() : "null", card_name().c_str(),
              check.c_str());
  std::fflush(stdout);
}

double env_double(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::atof(value) : 0.0;
}

void bench_copy() {
  auto context = gpu::Context::shared();
  const auto& caps = context->caps();
  // 1 GiB on a discrete GPU (far beyond any cache); smaller on CPU drivers so the run stays short.
  // MEGANEURA_COPY_MIB overrides the size (how the rate depends on it separates caches and TLBs
  // from DRAM).
  uint64_t bytes = caps.is_cpu ? (64ull << 20) : (1ull << 30);
  if (env_double("MEGANEURA_COPY_MIB") > 0) bytes = static_cast<uint64_t>(env_double("MEGANEURA_COPY_MIB")) << 20;
  bytes = std::min<uint64_t>(bytes, caps.max_storage_buffer_range / 16 * 16);
  const uint32_t count = static_cast<uint32_t>(bytes / 16);

  std::vector<float> host(bytes / 4);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (auto& v : host) v = dist(rng);

  gpu::Buffer src(context, bytes, gpu::MemoryKind::DeviceLocal, "copy.src");
  gpu::Buffer dst(context, bytes, gpu::MemoryKind::DeviceLocal, "copy.dst");
  gpu::upload(src, 0, std::as_bytes(std::span(host)));

  gpu::ShaderCompiler compiler;
  auto spirv = compiler.compile(kCopyShader, {.name = "bench_copy"});

  struct Variant {
    uint32_t workgroup, per_thread;
  };
  const Variant variants[] = {{256, 1}, {256, 4}, {512, 4}, {256, 8}, {1024, 2}};
  double best_rate = 0;
  std::string best_name, failures;
  for (const auto& variant : variants) {
    gpu::Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 2, .push_constant_bytes = 8,
                                     .specialization = {{0, variant.workgroup}, {1, variant.per_thread}},
                                     .label = "copy"});
    gpu::DescriptorSet set(pipeline, {{&src}, {&dst}});
    const uint32_t per_group = variant.workgroup * variant.per_thread;
    const uint32_t groups = (count + per_group - 1) / per_group;
    const uint32_t row_groups = std::min<uint32_t>(groups, 65535);
    const uint32_t rows = (groups + row_groups - 1) / row_groups;
    uint32_t push[2] = {count, row_groups};

    gpu::fill(dst, 0x7fc00000u);  // NaN: every element must be overwritten
    gpu::Recording recording(context, {.timestamps = true});
    recording.dispatch(pipeline, set, std::as_bytes(std::span(push)), {row_groups, rows, 1}, "copy");
    recording.finish();
    recording.run(3);  // warm-up

    std::vector<float> back(host.size());
    gpu::download(dst, 0, std::as_writable_bytes(std::span(back)));
    const std::string name = std::to_string(variant.workgroup) + "x" + std::to_string(variant.per_thread);
    if (std::memcmp(back.data(), host.data(), bytes) != 0) {
      failures += " " + name;
      continue;
    }
    // The check above left the GPU idle for a while: the clock settles before the timing.
    meganeura::bench_report::keep_gpu_busy([&] { recording.run(5); });
    std::vector<double> rates;
    for (int i = 0; i < 20; ++i) {
      recording.run(1);
      auto ns = recording.dispatch_durations_ns();
      if (ns.empty() || ns[0] == 0) break;
      rates.push_back(2.0 * static_cast<double>(bytes) / static_cast<double>(ns[0]) / 1e3);  // TB/s
    }
    if (rates.empty()) {
      emit("copy", 0, "TB/s", 0, "device has no timestamps");
      return;
    }
    // Cross-check the timestamps with the host clock over 20 replays in one submission.
    auto start = std::chrono::steady_clock::now();
    recording.run(20);
    const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "copy workgroup %u, %u vec4/thread: %.3f TB/s (timestamps), %.3f TB/s (host clock)\n",
                 variant.workgroup, variant.per_thread, median(rates), 20 * 2.0 * double(bytes) / wall_s / 1e12);
    if (median(rates) > best_rate) {
      best_rate = median(rates);
      best_name = name;
    }
  }
  // The driver's own copy (vkCmdCopyBuffer) for reference: a shader that falls well short of it
  // leaves bandwidth on the table.
  {
    gpu::Recording recording(context, {.timestamps = true});
    recording.copy({&src}, {&dst}, "copy");
    recording.finish();
    meganeura::bench_report::keep_gpu_busy([&] { recording.run(5); });
    std::vector<double> rates;
    for (int i = 0; i < 20; ++i) {
      recording.run(1);
      auto ns = recording.dispatch_durations_ns();
      if (ns.empty() || ns[0] == 0) break;
      rates.push_back(2.0 * static_cast<double>(bytes) / static_cast<double>(ns[0]) / 1e3);
    }
    if (!rates.empty()) std::fprintf(stderr, "copy vkCmdCopyBuffer: %.3f TB/s (timestamps)\n", median(rates));
  }
  if (!failures.empty()) {
    emit("copy", 0, "TB/s", 0, "FAILED: copied data differs for" + failures);
    return;
  }
  emit("copy", best_rate, "TB/s", env_double("MEGANEURA_BENCH_PEAK_TBS"),
       "ok (" + std::to_string(bytes >> 20) + " MiB, read+write, best variant " + best_name + ")");
}

// Host time of one replay of `dispatches` tiny dispatches, median of many.
double replay_us(gpu::Recording& recording, int repetitions) {
  std::vector<double> times;
  for (int i = 0; i < repetitions; ++i) {
    auto start = std::chrono::steady_clock::now();
    recording.run(1);
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  return median(times);
}

void bench_dispatch(bool with_barrier) {
  auto context = gpu::Context::shared();
  const uint32_t many = context->caps().is_cpu ? 200 : 2000;
  gpu::Buffer counters(context, many * 4, gpu::MemoryKind::DeviceLocal, "counters");
  gpu::fill(counters, 0);
  gpu::ShaderCompiler compiler;
  auto spirv = compiler.compile(kTinyShader, {.name = "bench_tiny"});
  gpu::Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 1, .push_constant_bytes = 4, .label = "tiny"});
  gpu::DescriptorSet set(pipeline, {{&counters}});

  auto record = [&](uint32_t dispatches) {
    auto recording = std::make_unique<gpu::Recording>(context);
    for (uint32_t slot = 0; slot < dispatches; ++slot) {
      recording->dispatch(pipeline, set, std::as_bytes(std::span(&slot, 1)), {1, 1, 1}, "tiny");
      if (with_barrier) recording->barrier();
    }
    recording->finish();
    return recording;
  };
  auto one = record(1);
  auto lots = record(many);
  one->run(5);
  lots->run(5);
  const int repetitions = 30;
  const double per_dispatch = (replay_us(*lots, repetitions) - replay_us(*one, repetitions)) / (many - 1);

  std::vector<uint32_t> back(many);
  gpu::download(counters, 0, std::as_writable_bytes(std::span(back)));
  const uint32_t expected_first = 5 + repetitions + 5 + repetitions;  // slot 0 runs in both recordings
  const uint32_t expected_rest = 5 + repetitions;
  bool ok = back[0] == expected_first;
  for (uint32_t i = 1; i < many; ++i) ok = ok && back[i] == expected_rest;
  emit(with_barrier ? "dispatch_barrier" : "dispatch", per_dispatch, "us", 0,
       ok ? "ok (" + std::to_string(many) + " dispatches)" : "FAILED: counters wrong");
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> names(argv + 1, argv + argc);
  if (names.empty()) names = {"copy", "dispatch", "dispatch_barrier"};
  try {
    if (names.count("copy")) bench_copy();
    if (names.count("dispatch")) bench_dispatch(false);
    if (names.count("dispatch_barrier")) bench_dispatch(true);
  } catch (const meganeura::Error& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
