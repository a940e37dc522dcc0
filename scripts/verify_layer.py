#!/usr/bin/env python3
"""Independent NumPy verifier for ``singlora layer`` ``.safetensors`` dumps.

Usage
-----
    python3 scripts/verify_layer.py FILE [FILE ...] [-v]
    python3 scripts/verify_layer.py --selftest [--keep DIR] [-v]

For every FILE the script re-derives, in dense float64 NumPy and without
looking at the Rust implementation, everything the dump claims (``y``,
``grad_x`` and the gradient of every parameter) from the dump's own inputs,
prints the relative error of each tensor and exits non-zero if any tensor is
off by more than the tolerance (1e-10 for f64 dumps, 1e-4 for f32 dumps; an
f32 dump is compared against the float64 recomputation from its own f32
inputs).  As a second, independent check the dense gradients are compared
with central finite differences of the scalar loss ``L = sum(grad_y * Y)``
computed with this script's own forward pass.

``--selftest`` generates dumps with the tool over every method x shape x u x
rsLoRA x dora_norm x state x dtype into a temporary directory, verifies them
all and prints ``N passed, M failed``.  The binary is taken from the
``SINGLORA_BIN`` environment variable if set, else ``target/release/singlora``
under the repository root (build it with ``cargo build --release``).

File contract
-------------
safetensors: an 8-byte little-endian u64 header length N, N bytes of JSON
header, then the data section.  Each header entry other than ``__metadata__``
is ``{"dtype": "F64"|"F32", "shape": [...], "data_offsets": [begin, end]}``
with offsets relative to the start of the data section; ``__metadata__`` is a
string -> string map.  Data is little-endian, row-major.

Tensors (b = batch, m = max(d_in, d_out), r = rank):

    x [b, d_in]  w0 [d_out, d_in]  grad_y [b, d_out]  y [b, d_out]  grad_x [b, d_in]
    full           delta.weight [d_out, d_in]
    lora           lora_A.weight [r, d_in], lora_B.weight [d_out, r]
    dora           lora_A.weight, lora_B.weight, lora_magnitude_vector [d_out]
    singlora       singlora_A.weight [m, r]
    singlora_dora  singlora_A.weight, lora_magnitude_vector
    and grad.P (same shape as P) for every parameter P.

Metadata: method, d_in, d_out, rank, alpha, scaling (alpha_over_r |
alpha_over_sqrt_r), scale, u, dora_norm (detached | full), dora_eps, init,
state, seed, dtype, batch.

Math (dense, float64)
---------------------
Y = X W^T, G = grad_y, G_W = G^T X (d_out x d_in), s = alpha/r or
alpha/sqrt(r) (s = 1 for ``full``; must equal metadata ``scale``), c = s*u.

* full:      W = W0 + c D;  grad D = c G_W.
* lora:      dW = c B A;  grad B = c G_W A^T;  grad A = c B^T G_W.
* singlora:  A is m x r, dW = c A[:d_out] A[:d_in]^T.  With Gh the m x m
             zero matrix holding G_W in its top-left d_out x d_in block,
             grad A = c (Gh + Gh^T) A.
* dora / singlora_dora wrap lora's / singlora's dW:
             V = W0 + dW, nu_i = max(||V_i||_2, dora_eps), omega = magnitude,
             k = omega / nu, W' = diag(k) V.
             grad omega_i = <G_W_i, V_i> / nu_i.
             detached: dV = diag(k) G_W   (nu treated as a constant)
             full:     dV = diag(k) [G_W - diag(<G_W_i, V_i> / nu_i^2) V]
                       (projection dropped on rows where the eps floor is active)
             and the factor gradients are the lora / singlora formulas with
             G_W replaced by dV.
* every method: grad_x = G W_eff, y = X W_eff^T.

Finite differences: central, step h_j = 1e-6 * max(1, |p_j|), on the loss
L = sum(G * Y) of this script's own forward.  For ``dora_norm = detached`` the
norm nu is frozen at its unperturbed value, which is exactly what "detached"
means.  Because the FD error has a round-off floor of about
eps * sum|G * Y| / h, the FD relative error uses that floor (times sqrt(n))
as the smallest admissible denominator.

Only numpy is required.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------
# constants

TOL = {"f64": 1e-10, "f32": 1e-4}
FD_TOL = 1e-6          # dense formulas vs. central finite differences
FD_STEP = 1e-6         # relative step of the central differences
FD_MAX_PARAMS = 4096   # skip FD above this many scalar unknowns
TINY = np.finfo(np.float64).tiny

METHODS = ("full", "lora", "dora", "singlora", "singlora_dora")
PARAMS = {
    "full": ("delta.weight",),
    "lora": ("lora_A.weight", "lora_B.weight"),
    "dora": ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector"),
    "singlora": ("singlora_A.weight",),
    "singlora_dora": ("singlora_A.weight", "lora_magnitude_vector"),
}
META_KEYS = ("method", "d_in", "d_out", "rank", "alpha", "scaling", "scale", "u",
             "dora_norm", "dora_eps", "init", "state", "seed", "dtype", "batch")
ST_DTYPES = {"F64": ("<f8", "f64"), "F32": ("<f4", "f32")}

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------
# safetensors reader (by hand)


class FormatError(Exception):
    """The file violates the safetensors / layer-dump contract."""


def read_safetensors(path):
    """Return (tensors, metadata, file_dtypes) of a safetensors file.

    ``tensors`` maps name -> numpy array in the file's own dtype,
    ``file_dtypes`` maps name -> "f32" | "f64".
    """
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise FormatError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise FormatError(f"header length {n} exceeds file size {len(raw)}")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"bad JSON header: {e}") from e
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise FormatError("__metadata__ is not a string -> string map")

    tensors, dtypes, spans = {}, {}, []
    for name, info in header.items():
        try:
            dt, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{name}: malformed header entry {info!r}") from e
        if dt not in ST_DTYPES:
            raise FormatError(f"{name}: unsupported dtype {dt}")
        np_dt, short = ST_DTYPES[dt]
        count = math.prod(shape)
        if not (0 <= begin <= end <= len(data)):
            raise FormatError(f"{name}: data_offsets {begin},{end} out of bounds")
        if end - begin != count * np.dtype(np_dt).itemsize:
            raise FormatError(f"{name}: {end - begin} bytes for shape {shape} {dt}")
        tensors[name] = np.frombuffer(data, dtype=np_dt, count=count,
                                      offset=begin).reshape(shape)
        dtypes[name] = short
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, a), (b1, e1, b) in zip(spans, spans[1:]):
        if b1 < e0:
            raise FormatError(f"tensors {a} and {b} overlap")
    return tensors, meta, dtypes


# --------------------------------------------------------------------------
# the layer, in dense float64


@dataclass
class Layer:
    method: str
    d_in: int
    d_out: int
    rank: int
    s: float
    u: float
    dora_norm: str
    dora_eps: float
    x: np.ndarray
    w0: np.ndarray
    g: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def c(self):
        return self.s * self.u

    @property
    def is_dora(self):
        return self.method in ("dora", "singlora_dora")

    # ---- forward --------------------------------------------------------

    def delta_w(self, p):
        """The additive update dW(p) (d_out x d_in)."""
        c = self.c
        if self.method == "full":
            return c * p["delta.weight"]
        if self.method in ("lora", "dora"):
            return c * (p["lora_B.weight"] @ p["lora_A.weight"])
        a = p["singlora_A.weight"]
        return c * (a[:self.d_out] @ a[:self.d_in].T)

    def row_norms(self, v):
        return np.maximum(np.linalg.norm(v, axis=1), self.dora_eps)

    def weight(self, p, frozen_nu=None):
        """Effective weight W_eff(p); ``frozen_nu`` replaces nu (detached FD)."""
        v = self.w0 + self.delta_w(p)
        if not self.is_dora:
            return v
        nu = self.row_norms(v) if frozen_nu is None else frozen_nu
        return (p["lora_magnitude_vector"] / nu)[:, None] * v

    def loss(self, p, x=None, frozen_nu=None):
        x = self.x if x is None else x
        return float(np.sum(self.g * (x @ self.weight(p, frozen_nu).T)))

    # ---- dense backward -------------------------------------------------

    def factor_grads(self, gv):
        """Gradients of the factors given dL/d(dW / c) = gv (d_out x d_in)."""
        p, c = self.params, self.c
        if self.method == "full":
            return {"delta.weight": c * gv}
        if self.method in ("lora", "dora"):
            a, b = p["lora_A.weight"], p["lora_B.weight"]
            return {"lora_B.weight": c * gv @ a.T, "lora_A.weight": c * b.T @ gv}
        a = p["singlora_A.weight"]
        m = a.shape[0]
        gh = np.zeros((m, m))
        gh[:self.d_out, :self.d_in] = gv
        return {"singlora_A.weight": c * (gh + gh.T) @ a}

    def expected(self):
        """Every output tensor of the dump, recomputed densely."""
        p = self.params
        w_eff = self.weight(p)
        gw = self.g.T @ self.x
        out = {"y": self.x @ w_eff.T, "grad_x": self.g @ w_eff}
        if self.is_dora:
            v = self.w0 + self.delta_w(p)
            raw = np.linalg.norm(v, axis=1)
            nu = np.maximum(raw, self.dora_eps)
            k = p["lora_magnitude_vector"] / nu
            inner = np.sum(gw * v, axis=1)
            out["grad.lora_magnitude_vector"] = inner / nu
            if self.dora_norm == "detached":
                dv = k[:, None] * gw
            else:
                proj = np.where(raw > self.dora_eps, inner / nu**2, 0.0)
                dv = k[:, None] * (gw - proj[:, None] * v)
        else:
            dv = gw
        for name, grad in self.factor_grads(dv).items():
            out["grad." + name] = grad
        return out

    # ---- finite differences --------------------------------------------

    def fd_grads(self):
        """Central finite differences of L for every parameter and for x."""
        p = {k: v.copy() for k, v in self.params.items()}
        frozen = None
        if self.is_dora and self.dora_norm == "detached":
            frozen = self.row_norms(self.w0 + self.delta_w(p))
        scale = float(np.sum(np.abs(self.g * (self.x @ self.weight(p, frozen).T))))
        out, floors = {}, {}

        def central(arr, f):
            grad = np.zeros(arr.shape)
            flat, gflat = arr.reshape(-1), grad.reshape(-1)
            for j in range(flat.size):
                keep = flat[j]
                h = FD_STEP * max(1.0, abs(keep))
                flat[j] = keep + h
                lp = f()
                flat[j] = keep - h
                lm = f()
                flat[j] = keep
                gflat[j] = (lp - lm) / (2 * h)
            return grad

        for name in p:
            out["grad." + name] = central(p[name], lambda: self.loss(p, frozen_nu=frozen))
        x = self.x.copy()
        out["grad_x"] = central(x, lambda: self.loss(p, x=x, frozen_nu=frozen))
        noise = np.finfo(np.float64).eps * max(scale, 1.0) / FD_STEP
        for name, arr in out.items():
            floors[name] = noise * math.sqrt(arr.size)
        return out, floors


# --------------------------------------------------------------------------
# verification of one file


def rel_err(a, b, floor=TINY):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), floor))


@dataclass
class Report:
    path: str
    ok: bool = True
    lines: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)      # tensor -> rel err vs dense
    fd_errors: dict = field(default_factory=dict)   # tensor -> dense vs FD

    def fail(self, msg):
        self.ok = False
        self.problems.append(msg)


def _meta_num(meta, key, conv, report):
    try:
        return conv(meta[key])
    except KeyError:
        report.fail(f"metadata '{key}' missing")
    except ValueError:
        report.fail(f"metadata '{key}' = {meta[key]!r} is not a number")
    return None


def build_layer(tensors, meta, report):
    """Check the contract and return a Layer (None if unusable)."""
    method = meta.get("method")
    if method not in METHODS:
        report.fail(f"unknown method {method!r}")
        return None
    d_in = _meta_num(meta, "d_in", int, report)
    d_out = _meta_num(meta, "d_out", int, report)
    rank = _meta_num(meta, "rank", int, report)
    alpha = _meta_num(meta, "alpha", float, report)
    scale = _meta_num(meta, "scale", float, report)
    u = _meta_num(meta, "u", float, report)
    eps = _meta_num(meta, "dora_eps", float, report)
    batch = _meta_num(meta, "batch", int, report)
    if None in (d_in, d_out, rank, alpha, scale, u, eps, batch):
        return None
    scaling, dora_norm = meta.get("scaling"), meta.get("dora_norm")
    if scaling not in ("alpha_over_r", "alpha_over_sqrt_r"):
        report.fail(f"unknown scaling {scaling!r}")
        return None
    if dora_norm not in ("detached", "full"):
        report.fail(f"unknown dora_norm {dora_norm!r}")
        return None
    if not 0.0 <= u <= 1.0:
        report.fail(f"u = {u} outside [0, 1]")

    if method == "full":
        s = 1.0
    elif scaling == "alpha_over_r":
        s = alpha / rank
    else:
        s = alpha / math.sqrt(rank)
    if abs(s - scale) > 1e-12 * max(1.0, abs(s)):
        report.fail(f"metadata scale {scale!r} != expected s = {s!r} ({method}, {scaling})")

    m = max(d_in, d_out)
    shapes = {
        "x": (batch, d_in), "w0": (d_out, d_in), "grad_y": (batch, d_out),
        "y": (batch, d_out), "grad_x": (batch, d_in),
        "delta.weight": (d_out, d_in), "lora_A.weight": (rank, d_in),
        "lora_B.weight": (d_out, rank), "lora_magnitude_vector": (d_out,),
        "singlora_A.weight": (m, rank),
    }
    wanted = ["x", "w0", "grad_y", "y", "grad_x"]
    for pname in PARAMS[method]:
        wanted += [pname, "grad." + pname]
    for name in wanted:
        base = name[5:] if name.startswith("grad.") else name
        if name not in tensors:
            report.fail(f"tensor {name} missing")
        elif tuple(tensors[name].shape) != shapes[base]:
            report.fail(f"{name} has shape {list(tensors[name].shape)}, "
                        f"expected {list(shapes[base])}")
    for name in sorted(set(tensors) - set(wanted)):
        report.fail(f"unexpected tensor {name}")
    if not report.ok:
        return None

    f64 = lambda name: np.array(tensors[name], dtype=np.float64)
    return Layer(method=method, d_in=d_in, d_out=d_out, rank=rank, s=s, u=u,
                 dora_norm=dora_norm, dora_eps=eps, x=f64("x"), w0=f64("w0"),
                 g=f64("grad_y"),
                 params={name: f64(name) for name in PARAMS[method]})


def verify_file(path, fd=True):
    """Verify one dump; return a Report (``ok``, table ``lines``, ``problems``)."""
    report = Report(str(path))
    try:
        tensors, meta, dtypes = read_safetensors(path)
    except (OSError, FormatError) as e:
        report.fail(f"cannot read: {e}")
        return report
    for key in META_KEYS:
        if key not in meta:
            report.fail(f"metadata '{key}' missing")
    dtype = meta.get("dtype")
    if dtype not in TOL:
        report.fail(f"unknown metadata dtype {dtype!r}")
        return report
    for name, dt in dtypes.items():
        if dt != dtype:
            report.fail(f"{name} stored as {dt} but metadata dtype is {dtype}")
    layer = build_layer(tensors, meta, report)
    if layer is None:
        return report
    tol = TOL[dtype]
    report.lines.append(
        f"{path}: {layer.method} {layer.d_out}x{layer.d_in} r={layer.rank} "
        f"s={layer.s:.6g} u={layer.u:g} norm={layer.dora_norm} "
        f"state={meta.get('state')} init={meta.get('init')} {dtype} (tol {tol:g})")

    exp = layer.expected()
    fdg, floors = ({}, {})
    n_unknowns = sum(v.size for v in layer.params.values()) + layer.x.size
    if fd and n_unknowns <= FD_MAX_PARAMS:
        fdg, floors = layer.fd_grads()

    for name in sorted(exp):
        err = report.errors[name] = rel_err(tensors[name], exp[name])
        ok = err <= tol
        line = f"  {name:28s} {str(list(exp[name].shape)):10s} rel err {err:.3e}"
        if name in fdg:
            fd_err = report.fd_errors[name] = rel_err(exp[name], fdg[name],
                                                      floor=floors[name])
            fd_ok = fd_err <= FD_TOL
            line += f"   dense-vs-FD {fd_err:.3e}{'' if fd_ok else ' FD-FAIL'}"
            if not fd_ok:
                report.fail(f"{name}: dense formula vs finite differences {fd_err:.3e}")
        if not ok:
            line += "  FAIL"
            report.fail(f"{name}: rel err {err:.3e} > {tol:g}")
        report.lines.append(line)
    return report


# --------------------------------------------------------------------------
# selftest


def find_binary():
    env = os.environ.get("SINGLORA_BIN")
    if env:
        return env
    return str(REPO_ROOT / "target" / "release" / "singlora")


# (d_out, d_in, rank): square, tall, wide and two odd shapes.  The tool
# limits the rank to min(d_in, d_out) for lora/dora and to max(d_in, d_out)
# for singlora/singlora_dora, so lora/dora use min(rank, min(d_in, d_out)) and
# the SingLoRA methods keep the larger rank (exercising r > min(d_in, d_out)).
SELFTEST_SHAPES = [(6, 6, 3), (9, 5, 2), (5, 9, 4), (1, 13, 3), (17, 3, 5)]
SELFTEST_US = ["0", "0.4", "1"]
SELFTEST_ALPHA = "5"
SELFTEST_BATCH = "3"
# extra sweep, state=init on one shape: every init the tool accepts per method
SELFTEST_INITS = {
    "full": ["zeros"],
    "lora": ["zeros", "kaiming_uniform", "peft_gaussian", "gaussian(std=0.3,beta=0.5)"],
    "singlora": ["zeros", "width_aware", "kaiming_r", "gaussian(std=0.3,beta=0.5)"],
}
SELFTEST_INITS["dora"] = SELFTEST_INITS["lora"]
SELFTEST_INITS["singlora_dora"] = SELFTEST_INITS["singlora"]


def selftest_rank(method, d_out, d_in, rank):
    return rank if method.startswith("singlora") else min(rank, d_out, d_in)


def selftest_cases():
    """Yield (name, tool arguments) for every generated dump."""
    grid = itertools.product(METHODS, SELFTEST_SHAPES, SELFTEST_US, (False, True),
                             ("detached", "full"), ("init", "random"), ("f32", "f64"))
    for i, (method, (d_out, d_in, r), u, rs, norm, state, dt) in enumerate(grid):
        r = selftest_rank(method, d_out, d_in, r)
        args = ["--method", method, "--d-in", str(d_in), "--d-out", str(d_out),
                "--rank", str(r), "--alpha", SELFTEST_ALPHA, "--u", u,
                "--dora-norm", norm, "--batch", SELFTEST_BATCH, "--seed", str(i + 1),
                "--state", state, "--dtype", dt]
        if rs:
            args.append("--rslora")
        name = (f"{method}_{d_out}x{d_in}_r{r}_u{u}_{'rs' if rs else 'std'}_"
                f"{norm}_{state}_{dt}")
        yield name, args
    j = 0
    for method in METHODS:
        for init, norm, dt in itertools.product(
                SELFTEST_INITS[method], ("detached", "full"), ("f32", "f64")):
            j += 1
            args = ["--method", method, "--d-in", "5", "--d-out", "9", "--rank", "3",
                    "--alpha", SELFTEST_ALPHA, "--u", "0.4", "--dora-norm", norm,
                    "--batch", SELFTEST_BATCH, "--seed", str(10_000 + j),
                    "--state", "init", "--init", init, "--dtype", dt]
            safe = "".join(ch if ch.isalnum() else "_" for ch in init)
            yield f"{method}_9x5_init-{safe}_{norm}_{dt}", args


def write_corrupted(src, dst, tensor=None, meta_updates=None):
    """Copy a dump, nudging one element of ``tensor`` and/or editing metadata.

    Used as negative controls: the verifier must reject every such copy.
    """
    raw = Path(src).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])
    if tensor is not None:
        info = header[tensor]
        np_dt = ST_DTYPES[info["dtype"]][0]
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=np_dt, count=(end - begin) // np.dtype(np_dt).itemsize,
                            offset=begin)
        arr = arr.copy()
        arr[arr.size // 2] += 1e-6 * max(float(np.abs(arr).max()), 1.0)
        data[begin:end] = arr.tobytes()
    if meta_updates:
        header["__metadata__"].update(meta_updates)
    blob = json.dumps(header).encode("utf-8")
    Path(dst).write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(data))


def negative_controls(tmp, binary):
    """Yield (name, path) of corrupted dumps that must all FAIL verification."""
    for method in METHODS:
        src = tmp / f"neg_{method}.safetensors"
        args = ["--method", method, "--d-in", "5", "--d-out", "9", "--rank", "3",
                "--alpha", SELFTEST_ALPHA, "--u", "0.4", "--dora-norm", "full",
                "--batch", SELFTEST_BATCH, "--seed", "777", "--state", "random",
                "--dtype", "f64", "--out", str(src)]
        subprocess.run([binary, "layer", *args], check=True, capture_output=True)
        tensors, _, _ = read_safetensors(src)
        targets = ["y", "grad_x"] + [t for t in tensors if t.startswith("grad.")]
        for t in sorted(targets):
            dst = tmp / f"neg_{method}_{t}.safetensors"
            write_corrupted(src, dst, tensor=t)
            yield f"{method}: nudged {t}", dst
        edits = [{"u": "0.41"}, {"rank": "2"} if method != "full" else {"u": "0.5"},
                 {"scaling": "alpha_over_sqrt_r"} if method != "full" else {"scale": "2"}]
        if method in ("dora", "singlora_dora"):
            edits.append({"dora_norm": "detached"})   # file was made with full
        for k, e in enumerate(edits):
            dst = tmp / f"neg_{method}_meta{k}.safetensors"
            write_corrupted(src, dst, meta_updates=e)
            yield f"{method}: metadata {e}", dst


def selftest(keep=None, verbose=False):
    """Generate dumps over the whole grid, verify them, run negative controls."""
    binary = find_binary()
    if not (Path(binary).exists() or shutil.which(binary)):
        print(f"selftest: binary {binary} not found", file=sys.stderr)
        return 2
    print(f"selftest: using {binary}")
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="verify_layer_"))
    tmp.mkdir(parents=True, exist_ok=True)
    passed = failed = 0
    worst = {}      # (dtype, tensor) -> (rel err, file)
    worst_fd = {}   # tensor -> (dense-vs-FD err, file)
    try:
        for name, args in selftest_cases():
            out = tmp / f"{name}.safetensors"
            proc = subprocess.run([binary, "layer", *args, "--out", str(out)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                failed += 1
                print(f"FAIL {name}: tool exited {proc.returncode}: "
                      f"{proc.stderr.strip() or proc.stdout.strip()}")
                continue
            report = verify_file(out)
            dt = "f32" if name.endswith("f32") else "f64"
            for t, e in report.errors.items():
                if e > worst.get((dt, t), (-1.0,))[0]:
                    worst[(dt, t)] = (e, name)
            for t, e in report.fd_errors.items():
                if e > worst_fd.get(t, (-1.0,))[0]:
                    worst_fd[t] = (e, name)
            if report.ok:
                passed += 1
                if verbose:
                    print("\n".join(report.lines))
            else:
                failed += 1
                print("\n".join(report.lines))
                for msg in report.problems:
                    print(f"  FAIL {name}: {msg}")
        n_dumps = passed + failed

        detected = missed = 0
        for name, path in negative_controls(tmp, binary):
            if verify_file(path).ok:
                missed += 1
                print(f"FAIL negative control not detected: {name}")
            else:
                detected += 1
        passed += detected
        failed += missed
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print("worst relative error per tensor (file vs dense recomputation):")
    for (dt, t), (e, name) in sorted(worst.items()):
        print(f"  {dt} {t:28s} {e:.3e}  (tol {TOL[dt]:g})  {name}")
    print("worst dense-vs-finite-difference error per tensor:")
    for t, (e, name) in sorted(worst_fd.items()):
        print(f"  {t:32s} {e:.3e}  (tol {FD_TOL:g})  {name}")
    print(f"{n_dumps} dumps verified, {detected + missed} negative controls "
          f"({detected} detected)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


# --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help=".safetensors layer dumps")
    ap.add_argument("--selftest", action="store_true",
                    help="generate dumps with the tool and verify them all")
    ap.add_argument("--keep", metavar="DIR",
                    help="with --selftest: write dumps to DIR and keep them")
    ap.add_argument("--no-fd", action="store_true",
                    help="skip the finite-difference check")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="with --selftest: print every file's table")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest(args.keep, args.verbose)
    if not args.files:
        ap.error("give FILE(s) or --selftest")
    bad = 0
    for path in args.files:
        report = verify_file(path, fd=not args.no_fd)
        print("\n".join(report.lines) if report.lines else report.path)
        for msg in report.problems:
            print(f"  FAIL: {msg}")
        print(f"  => {'OK' if report.ok else 'FAILED'}")
        bad += not report.ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
