#!/usr/bin/env python3
"""singlora vs PyTorch eager on one transformer training step, side by side (a speed report, never a test).

Usage
-----
    python3 scripts/peers/compare_transformer.py [--torch-python PY] [--widths 128 512] [--threads 1 2]
        [--reps 20] [--skip-bench] [--attention sdpa|math] [--stat median|min] [--rounds 1]

Runs ``cargo bench --bench transformer`` (criterion; singlora's step on k threads as ``singlora train`` runs it on
k free cores) and ``scripts/peers/torch_transformer.py`` (PyTorch eager, ``torch.set_num_threads(k)``) for each
``--threads`` k in one invocation, then prints one row per (width, dtype, threads) with both times and

    ratio = torch seconds / singlora seconds        (>= 1: singlora is at least as fast)

Both peers use the same k threads in a row. singlora's numbers do not depend on k (its products split output tiles,
never a dot product).
The 1-minute load average before and after each peer is printed: other work on the machine slows both.

``--stat min`` compares the fastest step of each peer instead of the medians (criterion's fastest sample mean; the
torch peer's fastest step): on a machine where other work comes and goes, the minimum is what each implementation
can do, the median mostly measures the neighbours. ``--rounds R`` alternates the two peers R times and keeps each
one's best statistic, so both see the same spells of load.

``--torch-python`` (default ``$TORCH_PYTHON``, else ``python3``) is an interpreter with torch installed.
``--skip-bench`` reuses the last criterion results in ``target/criterion``.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load():
    return os.getloadavg()[0]


def run_singlora(widths, threads, skip, stat):
    env = dict(os.environ, SINGLORA_BENCH_WIDTHS=",".join(map(str, widths)),
               SINGLORA_BENCH_THREADS=",".join(map(str, threads)))
    before = load()
    if not skip:
        subprocess.run(["cargo", "bench", "--bench", "transformer"], cwd=ROOT, env=env, check=True,
                       stdout=sys.stderr)
    times = {}
    for width in widths:
        for dtype in ["f32", "f64"]:
            for k in threads:
                run = ROOT / "target/criterion/transformer_step" / f"{dtype}-{k}t" / str(width) / "new"
                times[(width, dtype, k)] = criterion_seconds(run, stat)
    return times, (before, load())


def criterion_seconds(run, stat):
    """Criterion's median estimate, or its fastest sample mean, in seconds."""
    if stat == "median":
        with open(run / "estimates.json") as f:
            return json.load(f)["median"]["point_estimate"] / 1e9
    with open(run / "sample.json") as f:
        sample = json.load(f)
    return min(t / n for t, n in zip(sample["times"], sample["iters"])) / 1e9


def run_torch(python, widths, threads, reps, attention, stat):
    before = load()
    cmd = [python, str(ROOT / "scripts/peers/torch_transformer.py"), "--widths", *map(str, widths),
           "--threads", *map(str, threads), "--reps", str(reps), "--attention", attention]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    key = "seconds_per_step" if stat == "median" else "min_seconds_per_step"
    times = {(r["width"], r["dtype"], r["threads"]): r[key] for r in rows}
    return times, (before, load())


def best(a, b):
    return b if a is None else {k: min(a[k], b[k]) for k in a}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", "python3"))
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--stat", choices=["median", "min"], default="median")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    ours = theirs = None
    for r in range(a.rounds):
        o, ours_load = run_singlora(a.widths, a.threads, a.skip_bench and r == 0, a.stat)
        t, their_load = run_torch(a.torch_python, a.widths, a.threads, a.reps, a.attention, a.stat)
        ours, theirs = best(ours, o), best(theirs, t)
        print(f"round {r + 1}: load average singlora bench {ours_load[0]:.2f} -> {ours_load[1]:.2f}, "
              f"torch {their_load[0]:.2f} -> {their_load[1]:.2f} (on {os.cpu_count()} cores)")
    print(f"{a.stat} seconds per step (best of {a.rounds} round(s))")
    print(f"{'width':>6} {'dtype':>6} {'threads':>8} {'singlora s':>12} {'torch s':>12} {'ratio':>7}")
    for width in a.widths:
        for dtype in ["f32", "f64"]:
            for k in a.threads:
                s, t = ours[(width, dtype, k)], theirs[(width, dtype, k)]
                print(f"{width:>6} {dtype:>6} {k:>8} {s:>12.4f} {t:>12.4f} {t / s:>7.2f}")


if __name__ == "__main__":
    main()
