#!/usr/bin/env python3
"""singlora / PyTorch speed ratios, per width and for the whole default study, measured in one run on one machine.

Issue "Studies an order of magnitude faster than a PyTorch script": every claim about singlora's speed is a ratio
against a PyTorch eager peer of the same workload, measured here at the same load. Run from anywhere:

    # the README's targets: MLP steps at 128, 1024, 2048 and both grids, about 18 minutes on 2 idle cores
    /work/venv-torch/bin/python scripts/peers/compare.py --quick --skip-transformer --grid-repeats 3 --save run.json
    /work/venv-torch/bin/python scripts/peers/compare.py                    # steps at 64 ... 4096, the transformer too
    /work/venv-torch/bin/python scripts/peers/compare.py --widths 1024 --methods singlora --skip-grid --skip-transformer
    /work/venv-torch/bin/python scripts/peers/compare.py --load run.json    # a saved run's tables and targets again

(plus the first build: `cargo bench` and `cargo build --release`, about 5 minutes each on 2 cores when nothing is
built yet). Check `uptime` first; the table prints the load average before and after. Any python3 can run this
script; the PyTorch peers run under `--python` (default /work/venv-torch/bin/python when it exists). Nothing in the
crate, its tests or CI depends on PyTorch.

What it measures:

(a) singlora's training step: `cargo bench --bench steps -- REGEX` (benches/steps.rs, criterion) for the chosen
    methods, dtypes and widths, plus the GEMM ceiling of the same shapes; the median point estimate is read from
    target/criterion/<method>/<dtype>/<n>/new/estimates.json (and <dtype>-2t for its 2-thread step, which the
    2-thread rows use; without it, the 1-thread number stands against both).
(b) the same step in PyTorch: torch_mlp.py, once per `--threads` value (torch.set_num_threads); on one thread also
    the three GEMMs of (a) through torch (rows "gemm xwt", "gemm gw", "gemm gtx": faer against torch's BLAS on the
    same shapes, the part of a step's ratio at large n that is the GEMM library's).
(c) the whole default study: `target/release/singlora sweep --out FRESH_TMP --threads K` (wall time around the
    process, a fresh folder each time so nothing is resumed; it includes writing the tables, fits and 30 figures)
    against torch_grid.py at the same K (its own timing of the 108 runs, and its wall time around the process).
    singlora records every probe by default, the peer only dz_rms; the row "singlora dz_rms only" times the sweep
    with `--set 'probes=["dz_rms"]'`, the peer's workload. Two grids by default: the default study's (64 ... 2048)
    and the width-4096 grid (64 ... 4096); `--grid-widths W1,W2,...` (repeatable) picks others.
(d) the transformer step of the same methods (benches/transformer.rs against torch_transformer.py) at
    `--transformer-widths` (default 128,512); compare_transformer.py prints it with the GEMM ceiling beside it.

Ratio = torch time / singlora time: > 1 means singlora is faster.

Last, the targets of the speed issue (targets.py): each target's cells from this run, their range and a verdict
computed from them ("met", or how many cells are short and which). `--save FILE` keeps the run as JSON and `--load
FILE` prints its tables and targets again without measuring.

Load: the column "others (cores)" is how many cores other processes kept busy during each side's measurement. With
2 threads on this 2-core machine, PyTorch's OpenMP threads wait for each other whenever anything else runs: its
steps then take 10-1000x longer (seen here with about one core busy elsewhere). Trust 2-thread rows only when their
"others" is near 0; 1-thread rows degrade gracefully.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent
GEMMS = ["gemm_xwt", "gemm_gw", "gemm_gtx"]
# The width-4096 grid of the speed issue's study target (the default study's widths, doubled once more).
WIDE_GRID = [64, 128, 256, 512, 1024, 2048, 4096]
DEFAULT_PYTHON = "/work/venv-torch/bin/python"

sys.path.insert(0, str(PEERS))
from peer_args import (METHODS, non_negative_float, one_of, positive_float, positive_int,  # noqa: E402
                       positive_ints, width_list)
from targets import print_targets  # noqa: E402


def load_average():
    """The 1-, 5- and 15-minute load averages, as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds_busy():
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def own_children_cpu_seconds():
    """CPU seconds used by this script's finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Phase:
    """Measures, around a block, how many cores *other* processes kept busy on average: all busy CPU time minus
    this script's children's, over the wall time. That is the load the numbers of the block were measured at."""

    def __enter__(self):
        self.start = (time.perf_counter(), cpu_seconds_busy(), own_children_cpu_seconds())
        return self

    def __exit__(self, *exc):
        wall, busy, own = (a - b for a, b in zip(
            (time.perf_counter(), cpu_seconds_busy(), own_children_cpu_seconds()), self.start))
        self.others = max(0.0, (busy - own) / wall) if wall > 0 else 0.0
        return False


def wait_until_idle(max_busy, timeout):
    """Waits (up to `timeout` seconds) until the machine's cores are busy less than `max_busy` cores on average over
    3 seconds, so a measurement does not start in the middle of someone's build. Returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        before, t0 = cpu_seconds_busy(), time.perf_counter()
        time.sleep(3)
        busy = (cpu_seconds_busy() - before) / (time.perf_counter() - t0)
        if busy < max_busy or time.monotonic() > deadline:
            if busy >= max_busy:
                say(f"still {busy:.2f} cores busy after waiting {timeout:.0f} s; measuring anyway")
            return busy
        say(f"{busy:.2f} cores busy (limit {max_busy}); waiting")


def say(message):
    """Progress goes to stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    """Runs a command (from the repository root), raising with its output's tail if it fails."""
    say("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run(cmd, cwd=REPO, text=True, capture_output=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return proc


def json_lines(text):
    """The JSON objects printed one per line (other lines are ignored)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def criterion_results(prefixes):
    """Every criterion result under target/criterion whose group starts with one of `prefixes`:
    {(group, function_id, value_str): (median seconds, throughput elements or None)}."""
    results = {}
    root = REPO / "target" / "criterion"
    for bench_file in root.glob("**/new/benchmark.json"):
        meta = json.loads(bench_file.read_text())
        if not any(meta["group_id"].startswith(p) for p in prefixes):
            continue
        estimates = json.loads((bench_file.parent / "estimates.json").read_text())
        seconds = estimates["median"]["point_estimate"] * 1e-9
        elements = (meta.get("throughput") or {}).get("Elements")
        results[(meta["group_id"], meta["function_id"], meta["value_str"])] = (seconds, elements)
    return results


def run_criterion(bench, regex, env=None):
    """`cargo bench --bench BENCH -- REGEX`, with criterion's own output kept in target/peers/BENCH.log."""
    log_dir = REPO / "target" / "peers"
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = run(["cargo", "bench", "--bench", bench, "--", regex], env=env)
    (log_dir / f"{bench}.log").write_text(proc.stdout + proc.stderr)


def torch_mlp(python, threads, methods, dtypes, widths, min_time):
    """torch_mlp.py's results: {(method, dtype, width): seconds per step}."""
    proc = run([python, PEERS / "torch_mlp.py", "--threads", str(threads), "--methods", ",".join(methods),
                "--dtypes", ",".join(dtypes), "--widths", ",".join(map(str, widths)), "--min-time", str(min_time)])
    return {(r["method"], r["dtype"], int(r["width"])): r["seconds_per_step"] for r in json_lines(proc.stdout)}


def time_singlora_sweep(threads, widths, dz_only=False):
    """Wall time of the default study (at `widths`, or its own; recording every probe, or only dz_rms as the peer
    does) through the release binary in a fresh folder, and its runs' own time."""
    binary = REPO / "target" / "release" / "singlora"
    tmp = Path(tempfile.mkdtemp(prefix="singlora-grid-"))
    try:
        out = tmp / "default"
        sets = ["--set", f"widths=[{','.join(map(str, widths))}]"] if widths else []
        if dz_only:
            sets += ["--set", 'probes=["dz_rms"]']
        start = time.perf_counter()
        run([binary, "sweep", *sets, "--out", out, "--threads", str(threads)])
        wall = time.perf_counter() - start
        manifest = json.loads((out / "manifest.json").read_text())
        runs_seconds = sum(manifest["wall_seconds"].values())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return wall, runs_seconds


def time_torch_grid(python, threads, widths):
    """torch_grid.py's own timing of its runs (at `widths`, or the study's), and its wall time around the process
    (start-up included)."""
    extra = ["--widths", ",".join(map(str, widths))] if widths else []
    start = time.perf_counter()
    proc = run([python, PEERS / "torch_grid.py", "--threads", str(threads), *extra])
    wall = time.perf_counter() - start
    (line,) = [r for r in json_lines(proc.stdout) if r.get("study") == "default_grid"]
    return line["seconds"], wall


def transformer_rows(args, threads_list, dtypes, notes):
    """Rows for the transformer step of `--methods` at `--transformer-widths` (benches/transformer.rs against
    torch_transformer.py; compare_transformer.py prints the same comparison with the GEMM ceiling beside it)."""
    widths = args.transformer_widths
    env = dict(os.environ, SINGLORA_BENCH_METHODS=",".join(args.methods),
               SINGLORA_BENCH_WIDTHS=",".join(map(str, widths)), SINGLORA_BENCH_DTYPES=",".join(dtypes),
               SINGLORA_BENCH_THREADS=",".join(map(str, threads_list)))
    with measuring(args) as mine:
        if not args.reuse_bench:
            run_criterion("transformer", ".", env=env)
    found = criterion_results(["transformer_"])
    singlora = {(group.removeprefix("transformer_"), fid, int(val)): sec
                for (group, fid, val), (sec, _) in found.items()}
    rows = []
    for threads in threads_list:
        cmd = [args.python, PEERS / "torch_transformer.py", "--methods", ",".join(args.methods), "--threads",
               str(threads), "--widths", *map(str, widths), "--dtypes", *dtypes]
        with measuring(args) as theirs:
            proc = run(cmd)
        for r in json_lines(proc.stdout):
            key = (r["method"], f"{r['dtype']}-{threads}t", int(r["width"]))
            if key not in singlora:
                notes.append(f"transformer {'/'.join(map(str, key))}: no singlora result (skipped by the bench?)")
                continue
            rows.append({"what": f"transformer {r['method']}", "width": key[2], "dtype": r["dtype"],
                         "threads": threads, "singlora": singlora[key], "torch": r["seconds_per_step"],
                         "others": (mine.others, theirs.others)})
    return rows


def measuring(args):
    """Waits for a quiet machine (see --max-busy), then measures the other processes' load around a block."""
    if args.max_busy > 0:
        wait_until_idle(args.max_busy, args.max_wait)
    return Phase()


def fmt_seconds(s):
    """Seconds in a readable unit."""
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def print_table(rows):
    """The ratio table."""
    header = (f"{'what':<26} {'width':>6} {'dtype':>5} {'threads':>7} {'singlora':>11} {'torch':>11} "
              f"{'torch/singlora':>15} {'others (cores)':>15}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r["torch"] / r["singlora"] if r["singlora"] and r["torch"] else float("nan")
        width = str(r["width"]) if r["width"] is not None else "-"
        others = "{:.2f} / {:.2f}".format(*r["others"])
        print(f"{r['what']:<26} {width:>6} {r['dtype']:>5} {r['threads']:>7} {fmt_seconds(r['singlora']):>11} "
              f"{fmt_seconds(r['torch']):>11} {ratio:>15.2f} {others:>15}")


def step_rows(args, threads_list, methods, dtypes, widths, notes):
    """The MLP step: criterion's medians against torch_mlp.py's, and the GEMM ceiling of the same run."""
    with measuring(args) as mine:
        if not args.reuse_bench:
            regex = f"^({'|'.join(methods + GEMMS)})/({'|'.join(dtypes)})(-2t)?/({'|'.join(map(str, widths))})$"
            run_criterion("steps", regex)
    found = criterion_results(METHODS + GEMMS)
    rows = []
    for threads in threads_list:
        with measuring(args) as theirs:
            # The GEMMs on one thread only: singlora's are timed on one (its 2-thread step splits them itself).
            peer = torch_mlp(args.python, threads, methods + (GEMMS if threads == 1 else []), dtypes, widths,
                             args.torch_min_time)
        if threads == 1:
            rows += gemm_rows(found, peer, dtypes, widths, (mine.others, theirs.others))
        for dtype in dtypes:
            for method in methods:
                for width in widths:
                    # The 2-thread rows compare singlora's 2-thread step (id <dtype>-2t) when the bench has it.
                    two = (method, f"{dtype}-2t", str(width))
                    key = two if threads == 2 and two in found else (method, dtype, str(width))
                    if key not in found:
                        notes.append(f"no criterion result for {'/'.join(key)}")
                        continue
                    rows.append({"what": f"mlp step {method}", "width": width, "dtype": dtype, "threads": threads,
                                 "singlora": found[key][0], "torch": peer.get((method, dtype, width)),
                                 "flops": found[key][1], "others": (mine.others, theirs.others)})
    gflops = []
    for dtype in dtypes:
        for width in widths:
            rates = {name: found[(name, dtype, str(width))][1] / found[(name, dtype, str(width))][0] / 1e9
                     for name in methods + GEMMS if (name, dtype, str(width)) in found}
            gflops.append((dtype, width, rates))
    return rows, gflops


def gemm_rows(found, peer, dtypes, widths, others):
    """One row per dense product of the step, dtype and width: faer's (through singlora::linalg) against the BLAS
    torch calls, one thread each; this is the part of a step's ratio that is the GEMM library's."""
    return [{"what": f"gemm {name.removeprefix('gemm_')}", "width": width, "dtype": dtype, "threads": 1,
             "singlora": found[(name, dtype, str(width))][0], "torch": peer.get((name, dtype, width)),
             "others": others}
            for dtype in dtypes for name in GEMMS for width in widths if (name, dtype, str(width)) in found]


def grid_rows(args, threads_list, notes):
    """Every grid of `--grid-widths` (default: the default study, then the width-4096 grid): the release binary's
    wall time against torch_grid.py's, at each thread count."""
    run(["cargo", "build", "--release"])
    rows = []
    for widths in args.grid_widths or [None, WIDE_GRID]:
        for threads in threads_list:
            rows += one_grid(args, widths, threads, notes)
    return rows


def one_grid(args, widths, threads, notes):
    """One grid at one thread count: median wall times of `--grid-repeats` runs of each side (singlora with every
    probe and with dz_rms only, the peer's workload; torch_grid.py's own timing and its wall time)."""
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    runs = 18 * len(widths) if widths else 108
    label = f"sweep n={widths[0]}..{widths[-1]} ({runs} runs)" if widths else "default sweep (108 runs)"
    mine, runs_total, peer, peer_wall, load_mine, load_peer, dz = [], [], [], [], [], [], []
    for _ in range(args.grid_repeats):
        with measuring(args) as phase:
            wall, runs_seconds = time_singlora_sweep(threads, widths)
        mine.append(wall)
        runs_total.append(runs_seconds)
        load_mine.append(phase.others)
        with measuring(args) as phase:
            dz.append(time_singlora_sweep(threads, widths, dz_only=True)[0])
        load_mine.append(phase.others)
        with measuring(args) as phase:
            seconds, wall_torch = time_torch_grid(args.python, threads, widths)
        peer.append(seconds)
        peer_wall.append(wall_torch)
        load_peer.append(phase.others)
    others = (max(load_mine), max(load_peer))
    grid = "default" if widths is None else f"width {widths[-1]}"
    base = {"width": None, "dtype": "f64", "threads": threads, "others": others, "grid": grid}
    notes.append(f"{label} --threads {threads}: wall {', '.join(f'{v:.2f}' for v in mine)} s; the {runs} runs' "
                 f"own times add up to {median(runs_total):.2f} s ({threads} at a time; the rest is start-up, "
                 f"tables, fits and figures); torch_grid.py {', '.join(f'{v:.2f}' for v in peer)} s")
    return [dict(base, what=label, singlora=median(mine), torch=median(peer), workload="every probe"),
            dict(base, what="  torch incl. start-up", singlora=median(mine), torch=median(peer_wall)),
            dict(base, what="  singlora dz_rms only", singlora=median(dz), torch=median(peer), workload="dz_rms only")]


def main():
    # Piped into `head`, stop quietly as other command-line tools do, instead of a BrokenPipeError traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="widths 128,1024,2048 only (the default otherwise)")
    parser.add_argument("--threads", type=positive_ints, default="1,2",
                        help="PyTorch / sweep thread counts (default 1,2)")
    parser.add_argument("--widths", type=positive_ints,
                        help="MLP step widths (default 64,...,4096; --quick: 128,1024,2048)")
    parser.add_argument("--dtypes", type=one_of(["f32", "f64"]), default="f32,f64", help="default f32,f64")
    parser.add_argument("--methods", type=one_of(METHODS), default=",".join(METHODS),
                        help=f"default {','.join(METHODS)}")
    parser.add_argument("--skip-steps", action="store_true", help="no MLP step comparison")
    parser.add_argument("--skip-grid", action="store_true", help="no default-study comparison")
    parser.add_argument("--skip-transformer", action="store_true", help="no transformer comparison")
    parser.add_argument("--transformer-widths", type=positive_ints, default="128,512",
                        help="widths of the transformer comparison (default 128,512)")
    parser.add_argument("--reuse-bench", action="store_true",
                        help="read existing criterion results instead of running cargo bench")
    parser.add_argument("--grid-widths", type=width_list, action="append",
                        help="widths of one study comparison, e.g. 64,128,256 (repeat the flag for several grids; "
                             "default: the default study's 64,...,2048 and the width-4096 grid 64,...,4096)")
    parser.add_argument("--grid-repeats", type=positive_int, default=1, help="runs of each grid timing; the median is kept")
    parser.add_argument("--torch-min-time", type=positive_float, default=1.0, help="seconds per PyTorch step config")
    parser.add_argument("--max-busy", type=non_negative_float, default=0.3,
                        help="before each measurement, wait until other processes keep fewer than this many cores "
                             "busy (default 0.3; 0: do not wait)")
    parser.add_argument("--max-wait", type=non_negative_float, default=600, help="give up waiting after this many seconds")
    parser.add_argument("--python", default=DEFAULT_PYTHON if Path(DEFAULT_PYTHON).exists() else sys.executable,
                        help="the Python with torch for the peers")
    parser.add_argument("--save", help="also write every row as JSON to this file")
    parser.add_argument("--load", help="measure nothing: print the tables and targets of a run saved with --save")
    args = parser.parse_args()

    if args.load and args.save:
        parser.error("argument --save: not with --load (a loaded run is printed, not measured)")
    if args.load:
        try:
            measured = json.loads(Path(args.load).read_text())
        except (OSError, json.JSONDecodeError) as e:
            parser.error(f"argument --load: {args.load!r}: expected a file written by --save ({e})")
    else:
        measured = measure(args)
        if args.save:
            Path(args.save).write_text(json.dumps(measured, indent=1))
    report(measured)


def measure(args):
    """Runs every comparison asked for; returns what `report` prints (and `--save` writes)."""
    threads_list = args.threads
    dtypes, methods = args.dtypes, args.methods
    widths = args.widths or ([128, 1024, 2048] if args.quick else [64, 128, 256, 512, 1024, 2048, 4096])
    load_before = load_average()
    say(f"load average before: {load_before}")
    rows, gflops, notes = [], [], []
    if not args.skip_steps:
        step, gflops = step_rows(args, threads_list, methods, dtypes, widths, notes)
        rows += step
    if not args.skip_grid:
        rows += grid_rows(args, threads_list, notes)
    if not args.skip_transformer:
        rows += transformer_rows(args, threads_list, dtypes, notes)
    return {"host": os.uname().nodename, "cores": os.cpu_count(), "load_before": load_before,
            "load_after": load_average(), "methods": methods, "rows": rows, "gflops": gflops, "notes": notes}


def report(measured):
    """The ratio table, the GFLOP/s table, the notes and the targets' verdicts of one run."""
    print(f"singlora vs PyTorch on {measured.get('host', '?')} ({measured.get('cores', '?')} cores): load average "
          f"(1, 5, 15 min) "
          f"before {measured['load_before']}, after {measured['load_after']}")
    print("ratio = torch / singlora (> 1: singlora faster), at the same thread count (singlora's MLP step on 2 threads "
          "is its -2t benchmark; the sweep runs `threads` runs at a time). 'others': cores kept busy "
          "by other processes during singlora's / torch's measurement.")
    rows, gflops = measured["rows"], measured.get("gflops", [])
    print_table(rows)
    if gflops:
        print()
        print("GFLOP/s: needed FLOPs (benches/steps.rs derives them) / median time, beside the GEMM ceiling "
              "(singlora::linalg, b = 64, same run)")
        names = GEMMS + measured.get("methods", METHODS)
        print(f"{'dtype':>5} {'width':>6} " + "".join(f"{name:>14}" for name in names))
        for dtype, width, rates in gflops:
            print(f"{dtype:>5} {width:>6} " + "".join(f"{rates.get(name, float('nan')):>14.1f}" for name in names))
    for n in measured.get("notes", []):
        print("note:", n)
    print()
    print_targets(rows, gflops)


if __name__ == "__main__":
    main()
