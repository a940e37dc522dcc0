#!/usr/bin/env python3
"""PyTorch eager peer of singlora's transformer training step (a speed reference, never a test).

Usage
-----
    /work/venv-torch/bin/python scripts/peers/torch_transformer.py [--methods singlora,lora,...]
        [--widths 128 512] [--dtypes f32 f64] [--threads 1 2] [--reps 20] [--warmup 5] [--sequences B]
        [--attention sdpa|math]

Prints one JSON line per (method, width, dtype, threads):

    {"peer": "torch", "model": "transformer", "method": "singlora", "width": 128, "dtype": "f64", "threads": 1,
     "sequences": 256, "seconds_per_step": ..., "min_seconds_per_step": ..., "reps": 20, "attention": "sdpa"}

``seconds_per_step`` is the median over ``--reps`` timed steps after ``--warmup`` untimed ones,
``min_seconds_per_step`` the fastest of them (robust to other work on the machine). One step is what
singlora's ``benches/transformer.rs`` times: forward, loss, backward and the optimiser step (and zeroing the
gradients), on the whole batch, and from the same state: every step, timed or not, starts from the trainable
tensors and Adam's state after ``STATE_STEPS`` = 1 step from the base, copied back in place (untimed) before it.
Without that a step's time would depend on how many came before: full fine-tuning in f32 saturates its attention
within a few steps and the subnormal gradients that leaves make later steps up to twice as slow (the bench's doc).

The model is singlora's ``src/models/transformer.rs`` with the ``singlora train --model transformer --task recall``
defaults: vocabulary 16 (8 keys + 8 values), T = 5 (2 pairs + query), 256 sequences (B·T = 1280 token rows) up to
n = 1024 and 256·1024/n beyond (the bench's rule; ``--sequences`` overrides it), 2 pre-LayerNorm blocks, 4 heads of
size n/4, no biases;

    h0 = X W_E^T,  h' = h + Attn(LN(h)) W_O^T,  h'' = h' + GELU(LN(h') W_up^T) W_down^T,  f = LN(h_L) W_R^T

with LN PyTorch's LayerNorm without affine parameters (eps 1e-5), causal softmax attention with logit scale
1/sqrt(head_dim), the exact (erf) GELU -- ``Activation::Gelu`` in singlora is z·Φ(z) through ``libm::erf``, PyTorch's
``approximate="none"`` -- and a μP readout N(0, 1/n²). Every base weight is frozen; the adapter of ``--methods``
(``adapters.py``: full, lora, dora, singlora, singlora_dora, written as a PyTorch user writes them, DoRA as PEFT does)
of rank r = 4, α = 4 sits on q, k, v, o, up, down of every block; for SingLoRA Y = X W0^T + (α/r)·(X A_in) A_out^T
with A ∈ R^{m×r}, m = max(d_in, d_out), A_in = A[:d_in], A_out = A[:d_out]. The loss is the cross-entropy of the last token of each
sequence (singlora scores only rows whose target is non-zero), the optimiser Adam (η = 0.01, PyTorch defaults).

``--attention sdpa`` (default) uses ``F.scaled_dot_product_attention`` (what a PyTorch user writes; the fastest eager
path); ``--attention math`` spells out softmax(τ QKᵀ + mask) V with batched matmuls.
"""

import argparse
import json
import math
import statistics
import time

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapters import METHODS, adapt  # noqa: E402
from peer_args import head_width, non_negative_int, one_of, positive_int  # noqa: E402

VOCAB, KEYS, PAIRS, BLOCKS, HEADS, RANK, ALPHA, LR = 16, 8, 2, 2, 4, 4, 4.0, 0.01
STATE_STEPS = 1  # steps from the base before the state every timed step starts from (benches/transformer.rs)
SEQ_LEN = 2 * PAIRS + 1


class Block(torch.nn.Module):
    def __init__(self, n, method, dtype, gen, attention):
        super().__init__()

        def linear(d_in, d_out):
            w0 = torch.randn(d_out, d_in, generator=gen, dtype=dtype) / math.sqrt(d_in)
            return adapt(w0, method, RANK, ALPHA, gen)

        self.q, self.k, self.v, self.o = (linear(n, n) for _ in range(4))
        self.up = linear(n, 4 * n)
        self.down = linear(4 * n, n)
        self.n, self.d, self.attention = n, n // HEADS, attention
        mask = torch.full((SEQ_LEN, SEQ_LEN), float("-inf"), dtype=dtype).triu(1)
        self.register_buffer("mask", mask)

    def heads(self, y):
        # (B·T, n) -> (B, H, T, d)
        return y.view(-1, SEQ_LEN, HEADS, self.d).transpose(1, 2)

    def attend(self, a):
        q, k, v = self.heads(self.q(a)), self.heads(self.k(a)), self.heads(self.v(a))
        tau = 1.0 / math.sqrt(self.d)
        if self.attention == "sdpa":
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=tau)
        else:
            p = torch.softmax(tau * (q @ k.transpose(-1, -2)) + self.mask, dim=-1)
            ctx = p @ v
        return ctx.transpose(1, 2).reshape(-1, self.n)

    def forward(self, h):
        h = h + self.o(self.attend(F.layer_norm(h, (self.n,))))
        return h + self.down(F.gelu(self.up(F.layer_norm(h, (self.n,)))))


class Transformer(torch.nn.Module):
    def __init__(self, n, method, dtype, gen, attention):
        super().__init__()
        self.register_buffer("w_e", torch.randn(n, VOCAB, generator=gen, dtype=dtype) / math.sqrt(VOCAB))
        self.register_buffer("w_r", torch.randn(VOCAB, n, generator=gen, dtype=dtype) / n)
        self.blocks = torch.nn.ModuleList(Block(n, method, dtype, gen, attention) for _ in range(BLOCKS))
        self.n = n

    def forward(self, x):
        h = F.linear(x, self.w_e)
        for b in self.blocks:
            h = b(h)
        return F.linear(F.layer_norm(h, (self.n,)), self.w_r)


def recall_batch(sequences, dtype, gen):
    """One-hot associative-recall inputs (B·T × vocab) and the answer index of each sequence."""
    x = torch.zeros(sequences * SEQ_LEN, VOCAB, dtype=dtype)
    answers = torch.empty(sequences, dtype=torch.long)
    for s in range(sequences):
        keys = torch.randperm(KEYS, generator=gen)[:PAIRS]
        vals = KEYS + torch.randint(VOCAB - KEYS, (PAIRS,), generator=gen)
        row = s * SEQ_LEN
        for i in range(PAIRS):
            x[row + 2 * i, keys[i]] = 1
            x[row + 2 * i + 1, vals[i]] = 1
        q = int(torch.randint(PAIRS, (1,), generator=gen))
        x[row + SEQ_LEN - 1, keys[q]] = 1
        answers[s] = vals[q]
    return x, answers


def sequences_at(width):
    """Sequences per batch at width n, as ``benches/transformer.rs``: 256 up to n = 1024, 256·1024/n beyond."""
    return 256 if width <= 1024 else max(1, 256 * 1024 // width)


def snapshot(params, opt):
    """A function that copies ``params`` and ``opt``'s per-parameter state back, in place, to their values now."""
    saved = [p.detach().clone() for p in params]
    state = [{k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()} for p in params]

    @torch.no_grad()
    def restore():
        for p, s, st in zip(params, saved, state):
            p.copy_(s)
            for k, v in st.items():
                if torch.is_tensor(v):
                    opt.state[p][k].copy_(v)
                else:
                    opt.state[p][k] = v

    return restore


def time_steps(method, width, dtype, threads, reps, warmup, sequences, attention):
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    model = Transformer(width, method, dtype, gen, attention)
    x, answers = recall_batch(sequences, dtype, gen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)

    def step():
        logits = model(x)[SEQ_LEN - 1 :: SEQ_LEN]
        loss = F.cross_entropy(logits, answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(STATE_STEPS):
        step()
    restore = snapshot(params, opt)
    for _ in range(warmup):
        restore()
        step()
    times = []
    for _ in range(reps):
        restore()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", type=one_of(METHODS), default=["singlora"])
    ap.add_argument("--widths", type=head_width, nargs="+", default=[128, 512])
    ap.add_argument("--dtypes", nargs="+", default=["f32", "f64"], choices=["f32", "f64"])
    ap.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=positive_int, default=20)
    ap.add_argument("--warmup", type=non_negative_int, default=5)
    ap.add_argument("--sequences", type=positive_int, default=None)
    ap.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    a = ap.parse_args()
    dtypes = {"f32": torch.float32, "f64": torch.float64}
    for method in a.methods:
        for width in a.widths:
            sequences = a.sequences or sequences_at(width)
            for name in a.dtypes:
                for k in a.threads:
                    s, fastest = time_steps(method, width, dtypes[name], k, a.reps, a.warmup, sequences,
                                            a.attention)
                    line = {"peer": "torch", "model": "transformer", "method": method, "width": width,
                            "dtype": name, "threads": k, "sequences": sequences, "seconds_per_step": s,
                            "min_seconds_per_step": fastest, "reps": a.reps, "attention": a.attention}
                    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
