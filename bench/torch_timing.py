"""Host-timed median shared by the PyTorch sides of the benchmarks: warm-up calls, then the median
of `runs` calls, each followed by a device synchronisation (bench/run.py's protocol)."""
import statistics
import time

import torch


def median_ms(fn, warmup=3, runs=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
