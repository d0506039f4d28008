#!/usr/bin/env python3
"""Benchmark runner: runs each workload in Meganeura and in PyTorch on the same GPU, in one call,
and prints one table with both numbers, their ratio, the physical floor and the card.

    python3 bench/run.py --bin build/bin [WORKLOAD ...]      (./run.sh bench [WORKLOAD ...])

Each Meganeura benchmark program (bench_<group> in --bin) prints JSON lines
    {"workload": ..., "value": ..., "unit": ..., "floor": ..., "card": ..., "check": ...}
and bench/torch_side.py prints the same for PyTorch. A workload whose correctness check did not pass
reports no time. Units ending in "/s" are rates (higher is better); "ms" and "us" are times. Both
sides run each workload back to back for 1.5 s before timing it, so the GPU's clock has settled
(bench/bench_report.h: keep_gpu_busy).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# workload -> Meganeura program (in --bin) that measures it
WORKLOADS = {
    "copy": "bench_gpu",
    "dispatch": "bench_gpu",
    "dispatch_barrier": "bench_gpu",
    "optimize": "bench_optimize",
    "mlp_small_step": "bench_mlp",
    "mlp_small_latency": "bench_mlp",
    "mlp_large_step": "bench_mlp",
    "mlp_large_latency": "bench_mlp",
    "build_session_cold": "bench_mlp",
    "build_session_warm": "bench_mlp",
    "gemm_f32": "bench_matmul",
    "gemm_f16": "bench_matmul",
    "gemv_smollm2": "bench_matmul",
    "attention_smollm2_s128": "bench_attention",
    "attention_smollm2_s1024": "bench_attention",
    "conv2d_sd_unet": "bench_conv",
    "smollm2_generate32": "bench_smollm2",
    "smollm2_decode_step": "bench_smollm2",
    "smollm2_decode_step_f16w": "bench_smollm2",
    "smollm2_decode_step_bf16w": "bench_smollm2",
    "smollm2_prefill128": "bench_smollm2",
    "smollm2_prefill128_f16w": "bench_smollm2",
    "smollm2_train_step": "bench_smollm2",
    "sd_unet_step": "bench_sd_unet",
    "smolvlm2_ttft": "bench_smolvlm2",
    "smolvlm2_decode_step": "bench_smolvlm2",
}


def run_json_lines(cmd, timeout):
    """Runs cmd and returns the JSON objects it printed, one per line, plus its stderr tail."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], str(e)
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    tail = proc.stderr.strip().splitlines()[-3:]
    if proc.returncode != 0:
        tail.append(f"exit status {proc.returncode}")
    return rows, " | ".join(tail)


def is_rate(unit):
    return unit.endswith("/s")


def ratio(ours, theirs):
    """How many times better Meganeura is (> 1 means faster)."""
    if not ours or not theirs or ours.get("unit") != theirs.get("unit"):
        return None
    a, b = ours.get("value"), theirs.get("value")
    if not a or not b:
        return None
    return a / b if is_rate(ours["unit"]) else b / a


def fmt(row):
    if not row:
        return "-"
    if row.get("value") is None:
        return row.get("note", "-")
    return f"{row['value']:.4g} {row['unit']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="folder holding the bench_* programs")
    parser.add_argument("--python", default=sys.executable, help="Python with PyTorch for the comparison")
    parser.add_argument("--out", help="also write all rows as JSON to this file")
    parser.add_argument("--timeout", type=int, default=540, help="seconds per program")
    parser.add_argument("workloads", nargs="*", help=f"any of: {', '.join(WORKLOADS)} (default: all)")
    args = parser.parse_args()

    names = args.workloads or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")

    ours = {}
    notes = {}
    by_program = {}
    for name in names:
        by_program.setdefault(WORKLOADS[name], []).append(name)
    for program, group in by_program.items():
        path = os.path.join(args.bin, program)
        if not os.path.exists(path):
            for name in group:
                notes[name] = f"{program} not built"
            continue
        rows, err = run_json_lines([path, *group], args.timeout)
        for row in rows:
            ours[row["workload"]] = row
        for name in group:
            if name not in ours:
                notes[name] = err or "no result"

    theirs = {}
    torch_note = ""
    check = subprocess.run([args.python, "-c", "import torch; assert torch.cuda.is_available()"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        torch_note = "PyTorch with a GPU not importable"
    else:
        rows, err = run_json_lines([args.python, os.path.join(HERE, "torch_side.py"), *names], args.timeout)
        theirs = {row["workload"]: row for row in rows}
        torch_note = err or "no result"

    header = f"{'workload':<22} {'Meganeura':>16} {'PyTorch':>16} {'ratio':>7} {'floor':>14}  card / check"
    print(header)
    print("-" * len(header))
    all_rows = []
    for name in names:
        mine, other = ours.get(name), theirs.get(name)
        r = ratio(mine, other)
        floor = mine.get("floor") if mine else None
        floor_text = f"{floor:.4g} {mine['unit']}" if floor else "-"
        card = (mine or {}).get("card", "")
        check_text = (mine or {}).get("check", notes.get(name, ""))
        if mine and mine.get("selftest"):
            check_text += f" / self-test {mine['selftest']}"
        their_text = fmt(other) if other else torch_note
        print(f"{name:<22} {fmt(mine) if mine else notes.get(name, '-'):>16} {their_text[:16]:>16} "
              f"{(f'{r:.2f}x' if r else '-'):>7} {floor_text:>14}  {card} / {check_text}")
        all_rows.append({"workload": name, "meganeura": mine, "pytorch": other, "ratio": r})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(all_rows, f, indent=1)


if __name__ == "__main__":
    main()
