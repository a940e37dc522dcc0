#!/usr/bin/env python3
"""PyTorch eager peer of `singlora sweep` with no arguments (the default study, configs/default.toml).

The grid a researcher would script: 3 arms (LoRA, LoRA+ with lr_B = 16 lr_A, SingLoRA) x c in {1/2, 1} x widths
64 ... 2048 x 3 seeds = 108 runs. Each run:

- an MLP 16 -> n -> n -> 1 (2 hidden layers, ReLU, muP readout, no biases) with a random frozen base (He init,
  readout N(0, 1/n^2)) and the adapter (rank 4, alpha 4) on hidden.1;
- teacher-student regression: 32 training inputs x ~ N(0, I_16), the same at every width for a seed (singlora also
  draws 32 held-out inputs and records their loss; this script does not), target = base(x) + delta / rms(delta), delta = teacher(x) - base(x), the teacher being the base
  with a rank-2 PSD shift C C^T (C ~ N(0, 1/n)) added to hidden.1;
- 12 full-batch Adam steps (betas 0.9, 0.999, eps 1e-12) at lr = 0.05 n^(-c), MSE loss ||y - y*||^2 / (2 N);
- at every step t = 1 ... 12 it records dz_rms: the rms of the change of hidden.1's output on the training batch,
  z_t - z_{t-1}, where z_t comes from the forward pass the training step does anyway (one more forward after the
  last step).

Same workload as singlora's default sweep (not the same numbers: a different random generator). The fitted width
exponents should land near singlora's table in the README (e.g. t = 1: LoRA -0.5 at c = 1/2, SingLoRA about 0);
`--summary` prints them to stderr.

Prints one JSON line (wall time of the 108 runs, after `import torch`):

    {"peer": "torch", "study": "default_grid", "threads": 2, "dtype": "f64", "runs": 108, "steps": 12, "seconds": 7.2}

Usage (a few seconds per thread count):

    /work/venv-torch/bin/python scripts/peers/torch_grid.py --threads 2 [--summary] [--out dz.csv] [--widths 64,...,4096]
"""

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapters import MLP, dtype_of, mse  # noqa: E402
from peer_args import non_negative_ints, positive_int, width_list  # noqa: E402

WIDTHS = [64, 128, 256, 512, 1024, 2048]
STEPS = 12
LR = 0.05
LR_EXPONENTS = [0.5, 1.0]
ARMS = [("lora", "lora", 1.0), ("lora+", "lora", 16.0), ("singlora", "singlora", 1.0)]  # name, method, ratio
RANK, ALPHA = 4, 4.0
EXAMPLES = 32
SHIFT_RANK = 2


def make_data(width, seed, dtype):
    """The teacher-student regression data of one (width, seed): training inputs and normalised targets."""
    base = MLP(width, 2, "lora", adapted=set(), seed=seed, dtype=dtype)
    # As in singlora, the inputs come from their own stream, so they are the same at every width for a seed.
    shift_gen = torch.Generator().manual_seed(1_000 + seed)
    c = torch.randn(width, SHIFT_RANK, generator=shift_gen, dtype=dtype) / math.sqrt(width)
    data_gen = torch.Generator().manual_seed(2_000 + seed)
    x_train = torch.randn(EXAMPLES, 16, generator=data_gen, dtype=dtype)
    with torch.no_grad():
        y_base = base(x_train)
        base.maps[1].w += c @ c.T  # the teacher: the base with a PSD shift in hidden.1
        delta = base(x_train) - y_base
        target = y_base + delta / delta.pow(2).mean().sqrt()
    return x_train, target


def run(method, ratio, c, width, seed, dtype):
    """One training run; returns dz_rms at steps 1..STEPS and the training losses at steps 0..STEPS."""
    x, target = make_data(width, seed, dtype)
    model = MLP(width, 2, method, adapted={"hidden.1"}, rank=RANK, alpha=ALPHA, seed=seed, dtype=dtype)
    lr = LR * width ** (-c)
    groups = [{"params": [p for n, p in model.named_parameters() if p.requires_grad and "lora_B" not in n],
               "lr": lr},
              {"params": [p for n, p in model.named_parameters() if "lora_B" in n], "lr": lr * ratio}]
    optimizer = torch.optim.Adam([g for g in groups if g["params"]], betas=(0.9, 0.999), eps=1e-12)
    dz_rms, losses = [], []
    z_prev = None
    for t in range(STEPS + 1):
        if t < STEPS:
            optimizer.zero_grad(set_to_none=True)
            out, z = model(x, keep="hidden.1")
            loss = mse(out, target)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                out, z = model(x, keep="hidden.1")
                loss = mse(out, target)
        z = z.detach()
        losses.append(loss.item())
        if z_prev is not None:
            dz_rms.append((z - z_prev).pow(2).mean().sqrt().item())
        z_prev = z
    return dz_rms, losses


def slope(widths, values):
    """Least-squares slope of log(value) against log(width)."""
    lx = [math.log(w) for w in widths]
    ly = [math.log(v) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--dtype", default="f64", choices=["f32", "f64"],
                        help="f64 (the default study's precision) or f32")
    parser.add_argument("--summary", action="store_true", help="print width exponents of dz_rms to stderr")
    parser.add_argument("--seeds", type=non_negative_ints, default="0,1,2",
                        help="comma-separated seeds (default 0,1,2, the study's)")
    parser.add_argument("--out", help="write dz_rms per series, width, seed and step to this CSV file")
    parser.add_argument("--widths", type=width_list, default=",".join(map(str, WIDTHS)),
                        help="comma-separated widths (default the study's, 64,...,2048)")
    args = parser.parse_args()
    widths, seeds = args.widths, args.seeds

    torch.set_num_threads(args.threads)
    dtype = dtype_of(args.dtype)
    results = {}  # (series, width, seed) -> dz_rms list
    start = time.perf_counter()
    for name, method, ratio in ARMS:
        for c in LR_EXPONENTS:
            for width in widths:
                for seed in seeds:
                    dz, _ = run(method, ratio, c, width, seed, dtype)
                    results[(f"{name}@c={c:g}", width, seed)] = dz
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": "torch", "study": "default_grid", "threads": args.threads, "dtype": args.dtype,
                      "runs": len(results), "steps": STEPS, "widths": widths, "seconds": seconds}), flush=True)

    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["series", "width", "seed", "step", "dz_rms"])
            for (series, width, seed), dz in sorted(results.items()):
                for t, v in enumerate(dz, start=1):
                    w.writerow([series, width, seed, t, v])
    if args.summary:
        series_names = sorted({s for s, _, _ in results})
        print(f"width exponent of dz_rms at hidden.1 (geometric mean over seeds), n = {widths}", file=sys.stderr)
        print(f"{'series':<16}" + "".join(f"{'t = ' + str(t):>10}" for t in (1, 2, 4, 8, 12)), file=sys.stderr)
        for s in series_names:
            row = []
            for t in (1, 2, 4, 8, 12):
                gm = [math.exp(sum(math.log(results[(s, w, k)][t - 1]) for k in seeds) / len(seeds))
                      for w in widths]
                row.append(slope(widths, gm))
            print(f"{s:<16}" + "".join(f"{v:>+10.2f}" for v in row), file=sys.stderr)


if __name__ == "__main__":
    main()
