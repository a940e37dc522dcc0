"""The speed issue's targets, evaluated on the rows of one compare.py run.

Each target is a line (10x, 5x, 1.5x, 85 %) and the cells this run measured for it (one ratio per method, dtype,
width and thread count, or per grid and thread count). Its verdict is computed from those cells: "met" when every
cell is on the right side of the line, otherwise how many cells are short and the worst of them; a target with no
cell in this run (a skipped part, a width not asked for) says "not measured". Nothing here is written by hand.

The GEMM ceiling of a method's step (target "85 % of the measured GEMM throughput") is the rate its dense products
would run at if each ran as fast as the same product timed alone in the same run (benches/steps.rs, one thread):
every method's step is two forwards X·W0ᵀ (`gemm_xwt`) and one input gradient G·W0 (`gemm_gw`) of 2·b·n² FLOPs
each, and full fine-tuning adds its two weight gradients GᵀX (`gemm_gtx`); products of equal FLOPs combine as the
harmonic mean of their rates weighted by count. The step's rate is its needed FLOPs (benches/steps.rs derives them)
over its median time.
"""

import math
from dataclasses import dataclass, field

# How many (b×n)·(n×n) products of each kind one MLP step runs (benches/steps.rs, "FLOP count of a step").
STEP_PRODUCTS = {"full": {"gemm_xwt": 2, "gemm_gw": 1, "gemm_gtx": 2}}
DEFAULT_PRODUCTS = {"gemm_xwt": 2, "gemm_gw": 1}
# How many short cells a verdict names.
SHOWN = 6


@dataclass
class Target:
    """One target: its name, its line, whether a cell must be at least (True) or at most (False) the line, the unit
    cells are printed in, and the cells measured for it as (label, value)."""

    name: str
    line: float
    at_least: bool
    unit: str
    cells: list = field(default_factory=list)

    def add(self, label, value):
        """Adds a cell unless its value is missing (a peer that did not run it)."""
        if value is not None and math.isfinite(value):
            self.cells.append((label, value))

    def fmt(self, value):
        """The value with the unit, with as many more decimals as it takes not to print a cell off the line as the
        line itself (84.96 % as 85.0 %)."""
        suffix = "%" if self.unit == "%" else "x"
        digits = 1 if self.unit == "%" else 2
        while digits < 6 and value != self.line and f"{value:.{digits}f}" == f"{self.line:.{digits}f}":
            digits += 1
        return f"{value:.{digits}f}{suffix}"

    def short(self):
        """The cells on the wrong side of the line, worst first."""
        bad = [c for c in self.cells if (c[1] < self.line if self.at_least else c[1] > self.line)]
        return sorted(bad, key=lambda c: c[1], reverse=not self.at_least)

    def verdict(self):
        if not self.cells:
            return "not measured"
        bad = self.short()
        if not bad:
            return "met"
        listed = ", ".join(f"{label} {self.fmt(value)}" for label, value in bad[:SHOWN])
        more = f", and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        return f"not met: {len(bad)} of {len(self.cells)} cells short, worst first: {listed}{more}"

    def measured(self):
        if not self.cells:
            return "-"
        low, high = min(self.cells, key=lambda c: c[1]), max(self.cells, key=lambda c: c[1])
        return f"{self.fmt(low[1])} ({low[0]}) ... {self.fmt(high[1])} ({high[0]})"


def speedup(row):
    """torch / singlora of one row, or None when either side is missing."""
    return row["torch"] / row["singlora"] if row["torch"] and row["singlora"] else None


def ceiling(method, rates):
    """The GEMM ceiling of `method`'s step from the 1-thread GEMM rates of the same dtype and width (module doc), or
    None when a product's rate is missing."""
    counts = STEP_PRODUCTS.get(method, DEFAULT_PRODUCTS)
    if any(name not in rates for name in counts):
        return None
    return sum(counts.values()) / sum(k / rates[name] for name, k in counts.items())


def step_targets(rows, gflops):
    """The per-step targets from compare.py's MLP rows and GFLOP/s table."""
    faster_wide = Target("MLP step n >= 1024 no slower than PyTorch", 1.0, True, "x")
    faster_narrow = Target("MLP step n <= 128 at least 5x PyTorch", 5.0, True, "x")
    dora = Target("DoRA step within 1.5x of LoRA's (singlora)", 1.5, False, "x")
    full = Target("full fine-tuning step within 1.5x of LoRA's", 1.5, False, "x")
    share = {}
    steps = {(r["what"].removeprefix("mlp step "), r["dtype"], r["width"], r["threads"]): r
             for r in rows if r["what"].startswith("mlp step ")}
    for (method, dtype, width, threads), r in steps.items():
        label = f"{method} {dtype} n={width} {threads}t"
        ratio = speedup(r)
        if width >= 1024:
            faster_wide.add(label, ratio)
        if width <= 128:
            faster_narrow.add(label, ratio)
        lora = steps.get(("lora", dtype, width, threads))
        if lora and method in ("dora", "full"):
            (dora if method == "dora" else full).add(f"{dtype} n={width} {threads}t", r["singlora"] / lora["singlora"])
    for dtype, width, rates in gflops:
        if width < 1024:
            continue
        for method, rate in rates.items():
            if method.startswith("gemm_"):
                continue
            if method not in share:
                share[method] = Target(f"{method} step n >= 1024 at 85% of the GEMM ceiling (1 thread)", 85.0, True,
                                       "%")
            top = ceiling(method, rates)
            share[method].add(f"{dtype} n={width}", 100.0 * rate / top if top else None)
    return [faster_wide, *share.values(), faster_narrow, dora, full]


def grid_targets(rows):
    """The whole-study targets: each grid, with every probe (what `singlora sweep` records) and with the peer's
    workload (dz_rms only), at least 10x the PyTorch script of the same grid."""
    targets = {}
    for r in rows:
        if "grid" not in r or "workload" not in r:
            continue
        key = (r["grid"], r["workload"])
        if key not in targets:
            targets[key] = Target(f"{r['grid']} grid, {r['workload']}, at least 10x PyTorch", 10.0, True, "x")
        targets[key].add(f"{r['threads']}t", speedup(r))
    return list(targets.values())


def print_targets(rows, gflops):
    """The targets table: one line per target with its cells' range and its verdict."""
    targets = grid_targets(rows) + step_targets(rows, gflops)
    print("targets of the speed issue, from the rows above (cells: method dtype width threads; verdicts computed)")
    width = max(len(t.name) for t in targets)
    print(f"{'target':<{width}} {'cells':>5}  measured (lowest ... highest)")
    for t in targets:
        print(f"{t.name:<{width}} {len(t.cells):>5}  {t.measured()}")
        print(f"{'':<{width}} {'':>5}  -> {t.verdict()}")
