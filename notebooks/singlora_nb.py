"""What every notebook does with a study folder: find it, check what wrote it, read its tables (failing on a missing
column), refit width exponents the way the tool does, and draw width axes the way the tool's figures do.

The study folder is the environment variable SINGLORA_STUDY, or the notebook's default (the folder the command
writes by default, results/NAME, relative to the repository).
"""

import json
import math
import os
import tomllib
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def study_dir(default):
    """The study folder: $SINGLORA_STUDY, else `default` (relative to the repository root)."""
    d = Path(os.environ.get("SINGLORA_STUDY") or REPO / default)
    if not d.is_dir():
        raise FileNotFoundError(f"no study folder at {d}: run the study or set SINGLORA_STUDY to its --out folder")
    return d


def manifest(d, kind, model=None):
    """manifest.json of the study in `d`, checked to come from `singlora KIND` (and `model`); its config parsed."""
    m = json.loads((d / "manifest.json").read_text())
    assert m["kind"] == kind, f"{d} holds a `{m['kind']}` study, this notebook reads `{kind}` studies"
    m["config"] = tomllib.loads(m["config"])
    if model is not None:
        assert m["config"].get("model") == model, f"{d} is a {m['config'].get('model')} study, not {model}"
    return m


def read(d, name, columns):
    """Reads `d/name`, failing when any of `columns` is missing (a renamed column must fail, not plot nothing)."""
    df = pd.read_csv(d / name)
    missing = [c for c in columns if c not in df.columns]
    assert not missing, f"{name} lacks columns {missing}; it has {list(df.columns)}"
    return df


def t_two_sided(t, df):
    """P(|T| < t) for Student's t with integer `df`, exactly (Abramowitz & Stegun 26.7.3–4), θ = atan(t/√df)."""
    th = math.atan(t / math.sqrt(df))
    c2, s = math.cos(th) ** 2, math.sin(th)
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2 * th / math.pi
    term = total = math.cos(th)
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (th + s * total)


def t_quantile(df, p=0.975):
    """Student's t quantile (12.706 at df = 1, 4.303 at 2, → 1.960) by bisection on the exact CDF (no SciPy)."""
    lo, hi = 0.0, 1e4
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_two_sided(mid, df) < 2 * p - 1 else (lo, mid)
    return 0.5 * (lo + hi)


def fit_slope(widths, values):
    """The tool's width exponent (src/studies/fit.rs): each seed's OLS slope of log value on log width over its
    usable (finite, positive) points, their mean, and Student's t 95% interval over seeds. `values[w][s]`."""
    v = np.asarray(values, dtype=float)
    x = np.log(np.asarray(widths, dtype=float))
    slopes = []
    for s in range(v.shape[1]):
        ok = np.isfinite(v[:, s]) & (v[:, s] > 0)
        slopes.append(np.polyfit(x[ok], np.log(v[ok, s]), 1)[0] if ok.sum() >= 2 else np.nan)
    good = np.array([p for p in slopes if np.isfinite(p)])
    mean = good.mean()
    if len(good) < 2:
        return mean, np.nan, np.nan, slopes
    half = t_quantile(len(good) - 1) * good.std(ddof=1) / math.sqrt(len(good))
    return mean, mean - half, mean + half, slopes


def series_styles(runs):
    """Colour per arm, dash per rate exponent, from a table with `series`, `arm` and `lr_exponent` columns."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    arms = list(dict.fromkeys(runs["arm"]))
    exps = sorted(set(runs["lr_exponent"].astype(str)))
    dashes = ["-", "--", ":", "-."]
    out = {}
    for s, a, c in runs[["series", "arm", "lr_exponent"]].drop_duplicates().itertuples(index=False):
        out[s] = dict(color=colours[arms.index(a) % len(colours)], linestyle=dashes[exps.index(str(c)) % 4])
    return out


def plot_series(ax, mean, style, lo=None, hi=None):
    """A line per series column of `mean` (rows: widths) in its style, with the band `lo`–`hi` when given."""
    for s in mean.columns:
        ax.plot(mean.index, mean[s], **style[s], label=s)
        if lo is not None:
            ax.fill_between(mean.index, lo[s], hi[s], color=style[s]["color"], alpha=0.12)


def width_axis(ax, widths):
    """Log₂ width axis labelled with the widths themselves."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(widths), [str(w) for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("width n")


def reference_slopes(ax, widths, y0, flat_tol=None, half=True):
    """Grey guides through (smallest width, y0): n^0, n^(−1/2) (unless `half` is false), and the flat band n^(±τ)
    when `flat_tol` = τ."""
    n = np.asarray(widths, dtype=float)
    r = n / n[0]
    ax.plot(n, y0 * r**0, color="grey", linestyle=":", linewidth=1, label="n^0")
    if half:
        ax.plot(n, y0 * r**-0.5, color="grey", linestyle="-.", linewidth=1, label="n^(−1/2)")
    if flat_tol is not None:
        ax.fill_between(n, y0 * r**-flat_tol, y0 * r**flat_tol, color="grey", alpha=0.12,
                        label=f"flat: |slope| ≤ {flat_tol:g}")


def rate_axis(ax, axis="x"):
    """Log₂ learning-rate axis with plain numbers (0.0625, not 2^-4)."""
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2)
    getattr(ax, f"{axis}axis").set_major_formatter(FormatStrFormatter("%.3g"))


def slope_guides(ax, flat_tol):
    """Horizontal guides on a slope axis: 0 and −1/2, and the flat band [−τ, τ]."""
    ax.axhline(0, color="grey", linestyle=":", linewidth=1, label="0")
    ax.axhline(-0.5, color="grey", linestyle="-.", linewidth=1, label="−1/2")
    ax.axhspan(-flat_tol, flat_tol, color="grey", alpha=0.12, label=f"flat: |slope| ≤ {flat_tol:g}")


def legend_outside(ax, **kw):
    """The legend to the right of the axes, off the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize="small", **kw)


def geomean(x):
    """Geometric mean of the positive finite values (NaN if none)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.log(x).mean())) if len(x) else np.nan
