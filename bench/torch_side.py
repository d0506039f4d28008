#!/usr/bin/env python3
"""PyTorch side of the benchmark runner: measures the named workloads on the same GPU with the
strongest PyTorch form that works (eager, and a captured CUDA graph where it applies) and prints one
JSON line per workload in the runner's format. Usage: torch_side.py WORKLOAD [WORKLOAD ...]"""
import json
import statistics
import sys

import torch
from torch_timing import keep_gpu_busy, median_ms
import torch.nn.functional as F

DEV = "cuda"
CARD = torch.cuda.get_device_name(0)


def emit(workload, value, unit, note=""):
    print(json.dumps({"workload": workload, "value": value, "unit": unit, "card": CARD,
                      "note": note, "torch": torch.__version__}), flush=True)




def gpu_ms(fn, warmup=3, runs=20):
    """Median of GPU time between CUDA events around fn."""
    keep_gpu_busy(fn, warmup)
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy():
    n = 256 << 20  # 1 GiB of float32, far larger than the caches
    src = torch.randn(n, device=DEV)
    dst = torch.empty_like(src)
    ms = gpu_ms(lambda: dst.copy_(src))
    assert torch.equal(dst, src)
    emit("copy", 2 * n * 4 / ms / 1e9, "TB/s")


def dispatch():
    # The cheapest kernel PyTorch launches, 1000 back to back inside one CUDA graph (its best case).
    x = torch.zeros(1, device=DEV)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(1000):
            x.add_(1)
    ms = gpu_ms(graph.replay)
    emit("dispatch", ms * 1e3 / 1000, "us", "1000 dependent tiny kernels in a CUDA graph")
    emit("dispatch_barrier", ms * 1e3 / 1000, "us", "CUDA orders kernels on a stream")


def mlp(dims, batch):
    torch.manual_seed(0)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(DEV)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(batch, dims[0], device=DEV)
    y = torch.randint(0, dims[-1], (batch,), device=DEV)

    def eager_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    eager = median_ms(eager_step, warmup=5, runs=100)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            eager_step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def hundred():
        for _ in range(100):
            graph.replay()
    per_step = median_ms(hundred, warmup=5, runs=10) / 100
    # Latency as PERF.md defines it: the upload of one batch (from pinned memory, PyTorch's fastest
    # path) into the graph's static inputs, the step, and the loss read back.
    host_x, host_y = x.cpu().pin_memory(), y.cpu().pin_memory()

    def latency_step():
        x.copy_(host_x, non_blocking=True)
        y.copy_(host_y, non_blocking=True)
        graph.replay()
        return loss.item()
    latency = median_ms(latency_step, warmup=5, runs=100)
    return eager, per_step, latency


def mlp_workloads(names):
    for prefix, dims, batch in [("mlp_small", [784, 128, 10], 32), ("mlp_large", [784, 1024, 1024, 10], 256)]:
        if f"{prefix}_step" not in names and f"{prefix}_latency" not in names:
            continue
        eager, per_step, latency = mlp(dims, batch)
        emit(f"{prefix}_step", per_step, "ms", f"CUDA graph x100; eager {eager:.3f} ms")
        emit(f"{prefix}_latency", latency, "ms", "batch upload from pinned memory + CUDA graph replay + loss.item()")


def gemm(dtype, name):
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 4096
    a = torch.randn(n, n, device=DEV, dtype=dtype)
    b = torch.randn(n, n, device=DEV, dtype=dtype)
    ms = gpu_ms(lambda: torch.matmul(a, b))
    emit(name, 2 * n ** 3 / ms / 1e9, "TFLOP/s")


def gemv_smollm2():
    """SmolLM2-135M's linear shapes for one token (x [1, K] times weights [N, K] transposed), f32: the
    weight bytes of one decode step over the summed kernel times, as bench_matmul reports them."""
    torch.backends.cuda.matmul.allow_tf32 = False
    shapes = [(576, 576, 60), (192, 576, 60), (1536, 576, 60), (576, 1536, 30), (49152, 576, 1)]
    step_bytes = step_ms = 0.0
    for n, k, count in shapes:
        x = torch.randn(1, k, device=DEV)
        w = torch.randn(n, k, device=DEV)
        ms = gpu_ms(lambda: torch.matmul(x, w.t()), warmup=5, runs=50)
        step_bytes += 4.0 * n * k * count
        step_ms += ms * count
    emit("gemv_smollm2", step_bytes / (step_ms * 1e-3) / 1e12, "TB/s",
         f"one decode step of weights: {step_ms * 1e3:.1f} us (CUDA events around each product)")


def attention(name, seq):
    """SmolLM2-135M attention, causal, f32: scaled_dot_product_attention forward + backward."""
    torch.backends.cuda.matmul.allow_tf32 = False
    q = torch.randn(1, 9, seq, 64, device=DEV, requires_grad=True)
    k = torch.randn(1, 3, seq, 64, device=DEV, requires_grad=True)
    v = torch.randn(1, 3, seq, 64, device=DEV, requires_grad=True)
    dout = torch.randn(1, 9, seq, 64, device=DEV)

    def step():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        torch.autograd.grad(out, (q, k, v), dout)
    emit(name, gpu_ms(step), "ms", "SDPA f32 fwd+bwd, enable_gqa")


def conv_sd_unet():
    """cuDNN conv2d of an SD-UNet shape in f32 (TF32 off, as Meganeura computes in f32)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    x = torch.randn(2, 320, 64, 64, device=DEV)
    w = torch.randn(320, 320, 3, 3, device=DEV)
    ms = gpu_ms(lambda: F.conv2d(x, w, padding=1))
    emit("conv2d_sd_unet", 2.0 * 2 * 320 * 64 * 64 * 320 * 9 / ms / 1e9, "TFLOP/s", "cuDNN f32, TF32 off")


def main(names):
    if "copy" in names:
        copy()
    if "dispatch" in names or "dispatch_barrier" in names:
        dispatch()
    mlp_workloads(names)
    if "gemm_f32" in names:
        gemm(torch.float32, "gemm_f32")
    if "gemm_f16" in names:
        gemm(torch.float16, "gemm_f16")
    if "gemv_smollm2" in names:
        gemv_smollm2()
    if "attention_smollm2_s128" in names:
        attention("attention_smollm2_s128", 128)
    if "attention_smollm2_s1024" in names:
        attention("attention_smollm2_s1024", 1024)
    if "conv2d_sd_unet" in names:
        conv_sd_unet()
    import torch_smollm2  # transformers is imported only when these workloads run
    torch_smollm2.run(names, emit)
    import torch_sd_unet
    torch_sd_unet.run(names, emit)
    import torch_smolvlm2
    torch_smolvlm2.run(names, emit)


if __name__ == "__main__":
    main(set(sys.argv[1:]))
