"""The adapters of singlora written the way a PyTorch user would write them (eager mode, autograd, no tricks).

Shared by the PyTorch peers in this folder (`torch_mlp.py`, `torch_grid.py`). Conventions follow singlora
(README, `src/adapters/`): a linear map is y = x W^T with W of shape (d_out, d_in), no bias, the base W0 frozen.

- full:     y = x W0^T + x D^T, D (d_out, d_in) trainable, zero-initialised.
- lora:     y = x W0^T + s (x A^T) B^T, A (r, d_in) ~ U(+-1/sqrt(d_in)) (PEFT's kaiming_uniform(a=sqrt 5)),
            B (d_out, r) = 0, s = alpha / r (HF PEFT).
- singlora: y = x W0^T + s (x A_in) A_out^T with one A (m, r), m = max(d_in, d_out), A_in = A[:d_in],
            A_out = A[:d_out], A ~ N(0, 1/m) ("width-aware"), s = alpha / r, no ramp (u = 1).
- dora / singlora_dora: PEFT's DoRA (`peft/tuners/lora/dora.py`) around the lora / singlora update: the update's
            dense weight is formed by passing an identity matrix through it (PEFT does this instead of B @ A), the row
            norms of W0 + s dW are detached, m starts at the row norms of W0, and
            y = (m / ||W0 + s dW|| - 1) * (x W0^T) + (m / ||W0 + s dW||) * s * update(x) + x W0^T.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from peer_args import METHODS  # noqa: F401 (re-exported for the peers)


class Full(nn.Module):
    """Full fine-tuning: a dense trainable delta D added to the frozen base."""

    def __init__(self, w0, dtype):
        super().__init__()
        self.register_buffer("w0", w0)
        self.delta = nn.Parameter(torch.zeros_like(w0, dtype=dtype))

    def forward(self, x):
        return F.linear(x, self.w0) + F.linear(x, self.delta)


class LoRAUpdate(nn.Module):
    """LoRA's unscaled update x -> (x A^T) B^T, as HF PEFT initialises it (B = 0)."""

    def __init__(self, d_in, d_out, rank, generator, dtype):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        a = (torch.rand(rank, d_in, generator=generator, dtype=dtype) * 2.0 - 1.0) * bound
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(torch.zeros(d_out, rank, dtype=dtype))

    def forward(self, x):
        return F.linear(F.linear(x, self.lora_A), self.lora_B)


class SingLoRAUpdate(nn.Module):
    """SingLoRA's unscaled update x -> (x A_in) A_out^T with one factor A of shape (max(d_in, d_out), r)."""

    def __init__(self, d_in, d_out, rank, generator, dtype):
        super().__init__()
        m = max(d_in, d_out)
        self.d_in, self.d_out = d_in, d_out
        self.singlora_A = nn.Parameter(torch.randn(m, rank, generator=generator, dtype=dtype) / math.sqrt(m))

    def forward(self, x):
        a_in = self.singlora_A[: self.d_in]
        a_out = self.singlora_A[: self.d_out]
        return (x @ a_in) @ a_out.T


class Adapted(nn.Module):
    """A frozen base plus a scaled low-rank update: y = x W0^T + s * update(x)."""

    def __init__(self, w0, update, scale):
        super().__init__()
        self.register_buffer("w0", w0)
        self.update = update
        self.scale = scale

    def forward(self, x):
        return F.linear(x, self.w0) + self.scale * self.update(x)


class DoRA(nn.Module):
    """PEFT's DoRA around any update (LoRA's or SingLoRA's), with the detached row norm (DoRA section 4.3)."""

    def __init__(self, w0, update, scale):
        super().__init__()
        self.register_buffer("w0", w0)
        self.update = update
        self.scale = scale
        with torch.no_grad():
            self.magnitude = nn.Parameter(torch.linalg.norm(w0 + scale * self.dense_update(), dim=1))

    def dense_update(self):
        # PEFT: "Don't use lora_weight = lora_B.weight @ lora_A.weight ... calculate the same but using forward."
        eye = torch.eye(self.w0.shape[1], dtype=self.w0.dtype)
        return self.update(eye).T

    def forward(self, x):
        weight_norm = torch.linalg.norm(self.w0 + self.scale * self.dense_update().detach(), dim=1).detach()
        mag_norm_scale = (self.magnitude / weight_norm).view(1, -1)
        base = F.linear(x, self.w0)
        return (mag_norm_scale - 1) * base + mag_norm_scale * self.update(x) * self.scale + base


def adapt(w0, method, rank, alpha, generator):
    """Wraps the frozen weight `w0` (d_out, d_in) in `method`'s adapter, with singlora's default init and s = alpha/r."""
    d_out, d_in = w0.shape
    dtype = w0.dtype
    if method == "full":
        return Full(w0, dtype)
    scale = alpha / rank
    if method in ("lora", "dora"):
        update = LoRAUpdate(d_in, d_out, rank, generator, dtype)
    elif method in ("singlora", "singlora_dora"):
        update = SingLoRAUpdate(d_in, d_out, rank, generator, dtype)
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method.endswith("dora"):
        return DoRA(w0, update, scale)
    return Adapted(w0, update, scale)


class MLP(nn.Module):
    """singlora's MLP (src/models/mlp.rs): d0 -> `depth` hidden layers of width n (ReLU) -> d_out, no biases.

    Base weights ~ N(0, 2 / fan_in) (He gain for ReLU), the readout ~ N(0, 1/n^2) (muP); all frozen. `adapted` names
    the maps that carry an adapter: "input", "hidden.1" ... "hidden.{depth-1}", "readout".
    """

    def __init__(self, width, depth, method, adapted, rank=8, alpha=8.0, input_dim=16, output_dim=1, seed=0,
                 dtype=torch.float64):
        super().__init__()
        # Base weights come from `seed` alone and adapters from their own stream, so the base does not depend on
        # which maps are adapted (a student built with the same seed starts at the base network).
        base_gen = torch.Generator().manual_seed(seed)
        adapter_gen = torch.Generator().manual_seed(seed + 1_000_003)
        names = ["input"] + [f"hidden.{k}" for k in range(1, depth)] + ["readout"]
        shapes = [(width, input_dim)] + [(width, width)] * (depth - 1) + [(output_dim, width)]
        self.names = names
        self.maps = nn.ModuleList()
        for name, (d_out, d_in) in zip(names, shapes):
            std = 1.0 / width if name == "readout" else math.sqrt(2.0 / d_in)
            w0 = torch.randn(d_out, d_in, generator=base_gen, dtype=dtype) * std
            if name in adapted:
                self.maps.append(adapt(w0, method, rank, alpha, adapter_gen))
            else:
                self.maps.append(Frozen(w0))

    def forward(self, x, keep=None):
        """The output; if `keep` is a layer name, also that map's output z (before the activation)."""
        kept = None
        h = x
        for i, (name, layer) in enumerate(zip(self.names, self.maps)):
            z = layer(h)
            if name == keep:
                kept = z
            h = torch.relu(z) if i < len(self.maps) - 1 else z
        return (h, kept) if keep is not None else h


class Frozen(nn.Module):
    """A frozen linear map y = x W^T."""

    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x):
        return F.linear(x, self.w)


def mse(y, target):
    """singlora's loss: L = ||y - target||^2 / (2 N) over N rows."""
    return 0.5 * ((y - target) ** 2).sum() / y.shape[0]


def dtype_of(name):
    """torch dtype from 'f32' / 'f64'."""
    return {"f32": torch.float32, "f64": torch.float64}[name]
