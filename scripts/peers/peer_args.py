"""Argument types shared by the peer scripts: comma-separated lists checked when parsed, so a bad value is a
one-line argparse error (exit 2) before anything is timed."""

import argparse
import math

# Every method singlora trains, in `Method::ALL`'s order (src/adapters/config.rs).
METHODS = ["full", "lora", "dora", "singlora", "singlora_dora"]


def one_of(accepted):
    """argparse type: a comma-separated list of values from `accepted` (otherwise a one-line error, exit 2)."""
    def parse(text):
        values = [v for v in text.split(",") if v]
        bad = [v for v in values if v not in accepted]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {', '.join(accepted)}")
        return values
    return parse


def _ints(text):
    """The comma-separated integers of `text`, or [] if any is not an integer."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        return []


def non_negative_ints(text):
    """argparse type: a comma-separated list of integers >= 0, e.g. seeds (otherwise a one-line error, exit 2)."""
    values = _ints(text)
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers >= 0, e.g. 0,1,2")
    return values


def positive_ints(text):
    """argparse type: a comma-separated list of positive integers (otherwise a one-line error, exit 2)."""
    values = _ints(text)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive integers, e.g. 128,1024")
    return values


def width_list(text):
    """A comma-separated list of at least two increasing positive widths (argparse type: one-line error, exit 2)."""
    widths = _ints(text)
    if len(widths) < 2 or any(w <= 0 for w in widths) or widths != sorted(set(widths)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected at least two increasing positive widths, e.g. 64,128,256")
    return widths


def positive_int(text):
    """argparse type: one positive integer (otherwise a one-line error, exit 2)."""
    values = _ints(text)
    if len(values) != 1 or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return values[0]


def non_negative_int(text):
    """argparse type: one integer >= 0, e.g. a count of untimed steps (otherwise a one-line error, exit 2)."""
    values = _ints(text)
    if len(values) != 1 or values[0] < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return values[0]


def head_width(text):
    """argparse type: a transformer width, a positive multiple of its 4 heads (otherwise a one-line error, exit 2)."""
    values = _ints(text)
    if len(values) != 1 or values[0] < 4 or values[0] % 4:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive multiple of 4 (the transformer's 4 heads)")
    return values[0]


def _finite_at_least(text, low, strict):
    """The number `text` if it is finite and >= `low` (> when `strict`), else a one-line argparse error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > low if strict else value >= low)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number {'>' if strict else '>='} {low:g}")
    return value


def non_negative_float(text):
    """argparse type: one finite number >= 0 (otherwise a one-line error, exit 2)."""
    return _finite_at_least(text, 0.0, strict=False)


def positive_float(text):
    """argparse type: one finite number > 0 (otherwise a one-line error, exit 2)."""
    return _finite_at_least(text, 0.0, strict=True)
