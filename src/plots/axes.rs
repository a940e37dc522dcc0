//! Axes every figure shares: an axis's range in plotted units, where its ticks go and how they read.
//!
//! A log axis plots log₂ of the value, so a straight line of slope p on a log–log figure is a width exponent p, but
//! it reads as values: a width axis has a tick at each of the study's widths labelled with the width itself (64, 128,
//! …, or 96 and 192 when those are the widths), and a value axis has ticks at round values (1e-3, 1e-2, … over several
//! decades; 1, 2, 5 × 10^k over a short range).

use std::cell::Cell;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot_err;
use crate::error::Result;

/// The coordinate of one axis: a linear range in plotted units with the ticks of an [`Axis`]. (Plotters' own
/// `WithKeyPoints` cannot take a label formatter over an f64 range in 0.3.7, hence this small coordinate.)
pub(crate) struct Spec {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Ranged for Spec {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    /// A finite value maps linearly into `limit`. A non-finite one has no place: it is counted ([`take_non_finite`])
    /// and sent before the axis's start, where plotters clamps it onto the edge of the plotting area, a false point;
    /// every drawing routine leaves such values out first, and the count of a correct figure is 0.
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        if value.is_finite() {
            self.inner.map(value, limit)
        } else {
            NON_FINITE.with(|n| n.set(n.get() + 1));
            i32::MIN / 2
        }
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

thread_local! {
    /// Non-finite coordinates met by [`Spec::map`] on this thread since the last [`take_non_finite`].
    static NON_FINITE: Cell<usize> = const { Cell::new(0) };
}

/// The number of non-finite coordinates an axis was asked to place on this thread since the last call (a figure is
/// drawn on one thread: the count of its drawing).
pub(crate) fn take_non_finite() -> usize {
    NON_FINITE.with(|n| n.replace(0))
}

/// A chart on two [`Axis`]es, as every sweep and limit figure draws.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Spec, Spec>>;

/// How an axis's ticks read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    /// A log₂ axis of widths: the width, a whole number.
    Width,
    /// A log₂ axis of values: the value, in `1e-3` notation when `exp`, plainly (`0.5`, `20`) otherwise.
    Value { exp: bool },
    /// A linear axis: the value with this many decimals.
    Linear { decimals: usize },
}

/// One axis of a figure.
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    /// The lower end, in plotted units (log₂ of the value on a log axis).
    pub lo: f64,
    /// The upper end, in plotted units.
    pub hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
    label: Label,
}

impl Axis {
    /// A log axis of widths with a tick exactly at each width, padded by a third of an octave.
    pub fn widths(widths: &[usize]) -> Axis {
        let ticks: Vec<f64> = widths.iter().map(|&w| (w as f64).log2()).collect();
        let (lo, hi) = match (ticks.first(), ticks.last()) {
            (Some(&a), Some(&b)) => (a - 0.3, b + 0.3),
            _ => (0.0, 1.0),
        };
        Axis {
            lo,
            hi,
            ticks,
            minor: Vec::new(),
            label: Label::Width,
        }
    }

    /// A log axis of the grid `values` (positive, increasing): a tick at each, labelled with the value, padded by half
    /// the smallest spacing so that a cell centred on each value fits.
    pub fn grid(values: &[f64]) -> Axis {
        let ticks: Vec<f64> = values.iter().map(|v| v.log2()).collect();
        let half = ticks
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(f64::INFINITY, f64::min)
            .min(2.0)
            / 2.0;
        let half = if half.is_finite() { half } else { 0.5 };
        let (lo, hi) = match (ticks.first(), ticks.last()) {
            (Some(&a), Some(&b)) => (a - half, b + half),
            _ => (0.0, 1.0),
        };
        let exp = values.iter().any(|&v| !(1e-2..1e4).contains(&v));
        Axis {
            lo,
            hi,
            ticks,
            minor: Vec::new(),
            label: Label::Value { exp },
        }
    }

    /// The labelled ticks: (position in plotted units, label).
    pub fn ticks(&self) -> Vec<(f64, String)> {
        self.ticks.iter().map(|t| (*t, self.label(t))).collect()
    }

    /// A log axis spanning the usable (finite, positive) `values` with a small margin; `None` if there are none.
    pub fn log_values(values: impl IntoIterator<Item = f64>) -> Option<Axis> {
        let (lo, hi) = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        (lo <= hi).then(|| {
            let pad = (0.05 * (hi / lo).log2()).max(0.15);
            Axis::log_between(lo.log2() - pad, hi.log2() + pad)
        })
    }

    /// A log axis from 2^`lo` to 2^`hi` (plotted units), ticks at round values.
    pub fn log_between(lo: f64, hi: f64) -> Axis {
        let (bold, minor) = log_ticks(2f64.powf(lo), 2f64.powf(hi));
        let exp = bold.iter().any(|&v| !(1e-2..1e4).contains(&v));
        Axis {
            lo,
            hi,
            ticks: bold.iter().map(|v| v.log2()).collect(),
            minor: minor.iter().map(|v| v.log2()).collect(),
            label: Label::Value { exp },
        }
    }

    /// A linear axis from `lo` to `hi` with four to eight round ticks at least `min_step` apart.
    pub fn linear(lo: f64, hi: f64, min_step: f64) -> Axis {
        let (lo, hi) = if lo < hi {
            (lo, hi)
        } else {
            (lo - 1.0, lo + 1.0)
        };
        let step = nice_step((hi - lo) / 8.0).max(min_step);
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        let ticks = (first..=last).map(|k| k as f64 * step).collect();
        Axis {
            lo,
            hi,
            ticks,
            minor: Vec::new(),
            label: Label::Linear {
                decimals: (-step.log10().floor()).max(0.0) as usize,
            },
        }
    }

    /// A linear axis of optimiser steps 0..=`last`, ticks at whole steps.
    pub fn steps(last: u64) -> Axis {
        let last = last.max(1) as f64;
        Axis::linear(-0.02 * last, 1.02 * last, 1.0)
    }

    /// The coordinate plotters draws on: the range with this axis's ticks (and light grid lines at its minor ticks).
    pub fn spec(&self) -> Spec {
        Spec {
            inner: (self.lo..self.hi).into(),
            ticks: self.ticks.clone(),
            minor: self.minor.clone(),
        }
    }

    /// The label of the tick at plotted position `x`.
    pub fn label(&self, x: &f64) -> String {
        match self.label {
            Label::Width => format!("{}", 2f64.powf(*x).round() as u64),
            Label::Value { exp } => value_label(2f64.powf(*x), exp),
            Label::Linear { decimals } => {
                let s = format!("{:.*}", decimals, x);
                let s = if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.')
                } else {
                    &s
                };
                if s == "-0" {
                    "0".into()
                } else {
                    s.to_string()
                }
            }
        }
    }
}

/// The round step (1, 2 or 5 × 10^k) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let k = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * k)
        .find(|&s| s >= raw * 0.999)
        .unwrap_or(10.0 * k)
}

/// Round values m × 10^k in [lo, hi] for the mantissas `m`.
fn round_values(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (k0..=k1)
        .flat_map(|k| mantissas.iter().map(move |m| round_sig(m * 10f64.powi(k))))
        .filter(|v| *v >= lo && *v <= hi)
        .collect()
}

/// The ticks of a log axis over values [lo, hi]: (labelled, grid-only). Decades when three or more fit (every other
/// one past eight), else the first of 1-2-5, 1-2-3-5 and 1…9 × 10^k to give three ticks (at most six of 1…9), else
/// round linear steps.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let all: Vec<f64> = round_values(lo, hi, &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let decades = round_values(lo, hi, &[1.0]);
    if decades.len() >= 3 {
        let every = decades.len().div_ceil(8);
        let bold: Vec<f64> = decades.iter().copied().step_by(every).collect();
        let minor = if every == 1 { all } else { decades };
        return (bold, minor);
    }
    for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 2.0, 3.0, 5.0]] {
        let bold = round_values(lo, hi, mantissas);
        if bold.len() >= 3 {
            return (bold, all);
        }
    }
    if (3..=6).contains(&all.len()) {
        return (all, Vec::new());
    }
    let step = nice_step((hi - lo) / 4.0);
    let first = (lo / step).ceil() as i64;
    let bold = (first..)
        .map(|k| round_sig(k as f64 * step))
        .take_while(|v| *v <= hi)
        .filter(|v| *v > 0.0)
        .collect();
    (bold, all)
}

/// `v` rounded to three significant digits.
fn round_sig(v: f64) -> f64 {
    format!("{v:.2e}").parse().unwrap_or(v)
}

/// The label of value `v` on a log axis: `2e-3` when `exp`, `0.002`-style otherwise (three significant digits).
pub(crate) fn value_label(v: f64, exp: bool) -> String {
    let v = round_sig(v);
    if exp {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{m}e{e}"),
            None => s,
        }
    } else {
        format!("{v}")
    }
}

/// A chart on `area` with the axes `x` and `y`, their descriptions, a light grid at the ticks and the panel's
/// `caption` above (none when empty).
pub(crate) fn panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    (x, x_desc): (&Axis, &str),
    (y, y_desc): (&Axis, &str),
) -> Result<Chart<'a, DB>> {
    let mut builder = ChartBuilder::on(area);
    if !caption.is_empty() {
        builder.caption(caption, ("sans-serif", 15));
    }
    let mut chart = builder
        .margin(8)
        .margin_right(14)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(x.spec(), y.spec())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| x.label(v))
        .y_label_formatter(&|v| y.label(v))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(a: &Axis) -> Vec<String> {
        a.ticks.iter().map(|t| a.label(t)).collect()
    }

    #[test]
    fn width_axes_read_as_the_widths() {
        assert_eq!(
            labels(&Axis::widths(&[64, 128, 256, 512, 1024, 2048])),
            ["64", "128", "256", "512", "1024", "2048"]
        );
        assert_eq!(labels(&Axis::widths(&[96, 192, 300])), ["96", "192", "300"]);
    }

    #[test]
    fn value_axes_read_as_values() {
        let a = Axis::log_values([2e-4, 3e-1]).unwrap();
        assert_eq!(labels(&a), ["1e-3", "1e-2", "1e-1"]);
        let b = Axis::log_values([0.3, 4.0]).unwrap();
        assert_eq!(labels(&b), ["0.5", "1", "2"]);
        let c = Axis::log_values([0.45, 0.52]).unwrap();
        assert!(labels(&c).len() >= 2, "{:?}", labels(&c));
        assert!(
            labels(&c).iter().all(|l| !l.contains("e")),
            "{:?}",
            labels(&c)
        );
    }

    #[test]
    fn linear_axes_have_round_ticks() {
        assert_eq!(
            labels(&Axis::linear(-1.3, 0.7, 0.0)),
            ["-1", "-0.5", "0", "0.5"]
        );
        assert_eq!(labels(&Axis::steps(2)), ["0", "1", "2"]);
    }
}
