#!/usr/bin/env python3
"""singlora vs PyTorch eager on one transformer training step, side by side (a speed report, never a test).

Usage
-----
    python3 scripts/peers/compare_transformer.py [--torch-python PY] [--methods singlora,lora,...]
        [--widths 128 512] [--dtypes f32 f64] [--threads 1 2] [--reps 20] [--warmup 5] [--skip-bench] [--attention sdpa|math]
        [--stat median|min] [--rounds 1]

Runs ``cargo bench --bench transformer`` (criterion; singlora's step on k threads as ``singlora train`` runs it on
k free cores) and ``scripts/peers/torch_transformer.py`` (PyTorch eager, ``torch.set_num_threads(k)``) for each
``--threads`` k in one invocation, then prints one row per (method, width, dtype, threads) with both times, the
GFLOP/s of singlora's step (the bench's count of the products the step needs), the GFLOP/s of the block's own
products alone (``transformer_gemm``, the ceiling with these kernels) and

    ratio = torch seconds / singlora seconds        (>= 1: singlora is at least as fast)

Both peers use the same k threads in a row. singlora's numbers do not depend on k (its products split output tiles,
never a dot product).
The 1-minute load average before and after each peer is printed: other work on the machine slows both.

``--stat min`` compares the fastest step of each peer instead of the medians (criterion's fastest sample mean; the
torch peer's fastest step): on a machine where other work comes and goes, the minimum is what each implementation
can do, the median mostly measures the neighbours. ``--rounds R`` alternates the two peers R times and keeps each
one's best statistic, so both see the same spells of load.

``--torch-python`` (default ``$TORCH_PYTHON``, else /work/venv-torch/bin/python when it exists, else ``python3``) is an
interpreter with torch installed; one that cannot import torch is refused before anything runs (exit 2).
``--skip-bench`` reuses the last criterion results in ``target/criterion``.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_args import METHODS, head_width, non_negative_int, one_of, positive_int  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def load():
    return os.getloadavg()[0]


def run_singlora(a, skip):
    """singlora's seconds per step and GFLOP/s per (method, width, dtype, threads), the block GEMMs' GFLOP/s per
    (width, dtype, threads), and the load average before and after."""
    env = dict(os.environ, SINGLORA_BENCH_WIDTHS=",".join(map(str, a.widths)),
               SINGLORA_BENCH_THREADS=",".join(map(str, a.threads)), SINGLORA_BENCH_METHODS=",".join(a.methods),
               SINGLORA_BENCH_DTYPES=",".join(a.dtypes))
    before = load()
    if not skip:
        subprocess.run(["cargo", "bench", "--bench", "transformer"], cwd=ROOT, env=env, check=True,
                       stdout=sys.stderr)
    times, gemm = {}, {}
    for width, dtype, k in cells(a):
        for method in a.methods:
            run = criterion_dir(f"transformer_{method}", dtype, k, width)
            if run.exists():
                times[(method, width, dtype, k)] = (criterion_seconds(run, a.stat), criterion_flops(run))
        run = criterion_dir("transformer_gemm", dtype, k, width)
        seconds = criterion_seconds(run, a.stat)
        gemm[(width, dtype, k)] = criterion_flops(run) / seconds / 1e9
    return times, gemm, (before, load())


def cells(a):
    return [(w, d, k) for w in a.widths for d in a.dtypes for k in a.threads]


def criterion_dir(group, dtype, k, width):
    return ROOT / "target/criterion" / group / f"{dtype}-{k}t" / str(width) / "new"


def criterion_flops(run):
    """The FLOPs per iteration the bench declared (criterion's throughput in elements)."""
    with open(run / "benchmark.json") as f:
        return json.load(f)["throughput"]["Elements"]


def criterion_seconds(run, stat):
    """Criterion's median estimate, or its fastest sample mean, in seconds."""
    if stat == "median":
        with open(run / "estimates.json") as f:
            return json.load(f)["median"]["point_estimate"] / 1e9
    with open(run / "sample.json") as f:
        sample = json.load(f)
    return min(t / n for t, n in zip(sample["times"], sample["iters"])) / 1e9


def run_torch(a, cells_run):
    """PyTorch's seconds per step for the (method, width) pairs singlora ran (a width the bench skipped for memory
    would not fit PyTorch either), and the load average before and after."""
    before = load()
    key = "seconds_per_step" if a.stat == "median" else "min_seconds_per_step"
    times = {}
    for method, width in sorted({(m, w) for (m, w, _, _) in cells_run}):
        cmd = [a.torch_python, str(ROOT / "scripts/peers/torch_transformer.py"), "--methods", method,
               "--widths", str(width), "--dtypes", *a.dtypes, "--threads", *map(str, a.threads),
               "--reps", str(a.reps), "--warmup", str(a.warmup), "--attention", a.attention]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        for r in (json.loads(line) for line in out.splitlines() if line.startswith("{")):
            times[(r["method"], r["width"], r["dtype"], r["threads"])] = r[key]
    return times, (before, load())


def best(a, b):
    return b if a is None else {k: min(a[k], b[k]) for k in a}


def default_torch_python():
    """$TORCH_PYTHON, else the venv compare.py also defaults to when it exists, else python3."""
    venv = "/work/venv-torch/bin/python"
    return os.environ.get("TORCH_PYTHON") or (venv if Path(venv).exists() else "python3")


def check_torch(ap, python):
    """Refuses, before any benchmark runs, an interpreter that cannot import torch (one line, exit 2)."""
    try:
        ok = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    if not ok:
        ap.error(f"--torch-python: {python!r} cannot import torch; pass an interpreter with torch installed "
                 "(or set TORCH_PYTHON)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", default=default_torch_python())
    ap.add_argument("--methods", type=one_of(METHODS), default=["singlora"])
    ap.add_argument("--widths", type=head_width, nargs="+", default=[128, 512])
    ap.add_argument("--dtypes", nargs="+", default=["f32", "f64"], choices=["f32", "f64"])
    ap.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=positive_int, default=20)
    ap.add_argument("--warmup", type=non_negative_int, default=5)
    ap.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--stat", choices=["median", "min"], default="median")
    ap.add_argument("--rounds", type=positive_int, default=1)
    a = ap.parse_args()
    check_torch(ap, a.torch_python)
    ours = theirs = gemm = None
    for r in range(a.rounds):
        o, g, ours_load = run_singlora(a, a.skip_bench and r == 0)
        t, their_load = run_torch(a, o)
        ours = o if ours is None else {k: min(ours[k], o[k]) for k in ours}
        gemm = g if gemm is None else {k: max(gemm[k], g[k]) for k in gemm}
        theirs = best(theirs, t)
        print(f"round {r + 1}: load average singlora bench {ours_load[0]:.2f} -> {ours_load[1]:.2f}, "
              f"torch {their_load[0]:.2f} -> {their_load[1]:.2f} (on {os.cpu_count()} cores)")
    print(f"{a.stat} seconds per step (best of {a.rounds} round(s)); GFLOP/s of singlora's step and of the block's "
          "products alone (transformer_gemm)")
    print(f"{'method':>14} {'width':>6} {'dtype':>6} {'threads':>8} {'singlora s':>12} {'torch s':>12} "
          f"{'GFLOP/s':>8} {'GEMM':>8} {'ratio':>7}")
    for method in a.methods:
        for width, dtype, k in cells(a):
            if (method, width, dtype, k) not in ours:
                print(f"{method:>14} {width:>6} {dtype:>6} {k:>8}   (skipped by the bench: see its stderr)")
                continue
            (s, flops), t = ours[(method, width, dtype, k)], theirs[(method, width, dtype, k)]
            print(f"{method:>14} {width:>6} {dtype:>6} {k:>8} {s:>12.4f} {t:>12.4f} {flops / s / 1e9:>8.1f} "
                  f"{gemm[(width, dtype, k)]:>8.1f} {t / s:>7.2f}")


if __name__ == "__main__":
    main()
