#!/usr/bin/env python3
"""PyTorch eager peer of singlora's MLP training step (`cargo bench --bench steps`, benches/steps.rs).

One training step = forward, MSE loss, backward, Adam step, of the MLP 16 -> n -> n -> n -> 1 (3 hidden layers,
ReLU, muP readout, no biases, base frozen) with the adapter on both n x n hidden maps (hidden.1, hidden.2), rank 8,
alpha 8, batch 64, Adam(lr=1e-3) -- the same workload as singlora's bench, written as a researcher would write it
(nn.Module, autograd, torch.optim.Adam). Adapters are defined in `adapters.py` beside this file.

For every (method, dtype, width) it builds the model, runs a few warm-up steps, then times single steps until at
least `--min-time` seconds and `--min-reps` steps have passed, and prints one JSON line with the median:

    {"peer": "torch", "model": "mlp", "method": "singlora", "width": 1024, "dtype": "f64", "threads": 1,
     "seconds_per_step": 0.0123, "reps": 80}

The "methods" gemm_xwt, gemm_gw and gemm_gtx time instead the three dense products a step is made of, with b = 64,
exactly as benches/steps.rs times them through singlora::linalg: X @ W.T ((b x n)(n x n)^T), G @ W ((b x n)(n x n))
and G.T @ X ((b x n)^T (b x n)), each into a fresh output as torch's autograd computes them; the line's
"seconds_per_step" is one product's. They are the GEMM library's side of the comparison (MKL here, faer there).

Usage (about 2 minutes for the defaults below at one thread count):

    /work/venv-torch/bin/python scripts/peers/torch_mlp.py --threads 1 --widths 128,1024,2048 --dtypes f32,f64
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapters import METHODS, MLP, dtype_of, mse  # noqa: E402
from peer_args import non_negative_int, one_of, positive_float, positive_int, positive_ints  # noqa: E402

BATCH = 64
INPUT_DIM = 16
DEPTH = 3
RANK = 8
ALPHA = 8.0
LR = 1e-3


GEMMS = {
    "gemm_xwt": lambda x, w, g: x @ w.T,
    "gemm_gw": lambda x, w, g: g @ w,
    "gemm_gtx": lambda x, w, g: g.T @ x,
}


def median_time(step, min_time, min_reps, warmup):
    """Median wall time of `step()` over at least `min_reps` calls and `min_time` seconds, after `warmup` calls; the
    number of timed calls; the last call's result."""
    for _ in range(warmup):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        out = step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times), out


def time_gemm(name, width, dtype, min_time, min_reps, warmup):
    """Median wall time of one of the step's dense products (GEMMS) at width n, b = 64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, width, generator=gen, dtype=dtype)
    w = torch.randn(width, width, generator=gen, dtype=dtype) / width ** 0.5
    g = torch.randn(BATCH, width, generator=gen, dtype=dtype)
    product = GEMMS[name]
    seconds, reps, _ = median_time(lambda: product(x, w, g), min_time, min_reps, warmup)
    return seconds, reps


def time_steps(method, width, dtype, min_time, min_reps, warmup):
    """Median wall time of one training step, and the number of timed steps."""
    if method in GEMMS:
        return time_gemm(method, width, dtype, min_time, min_reps, warmup)
    model = MLP(width, DEPTH, method, adapted={"hidden.1", "hidden.2"}, rank=RANK, alpha=ALPHA,
                input_dim=INPUT_DIM, seed=0, dtype=dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=LR)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(BATCH, INPUT_DIM, generator=gen, dtype=dtype)
    y = torch.randn(BATCH, 1, generator=gen, dtype=dtype)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = mse(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    seconds, reps, loss = median_time(step, min_time, min_reps, warmup)
    if not torch.isfinite(torch.tensor(loss)):
        raise RuntimeError(f"{method}/{dtype}/{width}: the loss became {loss}")
    return seconds, reps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--widths", type=positive_ints, default="64,128,256,512,1024,2048,4096",
                        help="comma-separated widths n (default 64,...,4096)")
    parser.add_argument("--dtypes", type=one_of(["f32", "f64"]), default="f32,f64",
                        help="comma-separated: f32, f64 (default both)")
    parser.add_argument("--methods", type=one_of(list(METHODS) + list(GEMMS)), default=",".join(METHODS),
                        help=f"comma-separated (default {','.join(METHODS)}; also {', '.join(GEMMS)})")
    parser.add_argument("--min-time", type=positive_float, default=1.0, help="seconds of timed steps per config (default 1)")
    parser.add_argument("--min-reps", type=positive_int, default=5, help="at least this many timed steps (default 5)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps first (default 3)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    for dtype_name in args.dtypes:
        for method in args.methods:
            for width in args.widths:
                seconds, reps = time_steps(method, width, dtype_of(dtype_name), args.min_time, args.min_reps,
                                           args.warmup)
                print(json.dumps({"peer": "torch", "model": "mlp", "method": method, "width": width,
                                  "dtype": dtype_name, "threads": args.threads, "seconds_per_step": seconds,
                                  "reps": reps}), flush=True)


if __name__ == "__main__":
    main()
