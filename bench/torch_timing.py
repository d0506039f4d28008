"""Host-timed median shared by the PyTorch sides of the benchmarks: warm-up calls, then the median
of `runs` calls, each followed by a device synchronisation (bench/run.py's protocol)."""
import statistics
import time

import torch


def keep_gpu_busy(fn, warmup=3, seconds=1.5):
    """Calls fn back to back for `seconds` (`warmup` calls at least) before a timing, as the Meganeura
    side does (bench/bench_report.h: keep_gpu_busy): the GPU's clock settles under load first."""
    start = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - start < seconds:
        fn()
        calls += 1
        if calls % 8 == 0:
            torch.cuda.synchronize()  # time the work, not the queueing
    torch.cuda.synchronize()


def median_ms(fn, warmup=3, runs=10):
    keep_gpu_busy(fn, warmup)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
