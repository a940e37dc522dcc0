//! Figures of a limit study (PNG and SVG), in the conventions of the sweep figures: colour = arm (its place in the
//! study), widths as shades of it from light (narrow) to dark (wide), log axes labelled with widths and values,
//! legends beside the data.
//!
//! - `limit_<arm>.{png,svg}`: loss, output rms, readout-overlap rms and bottleneck rms against step for the first seed,
//!   one line per finite width and the computed limit in thick dashed black.
//! - `limit_convergence.{png,svg}`: the distance of each finite run to its limit against width on log–log axes, a
//!   point per seed, the geometric mean per width joined by a line, the fitted slope and its interval in the legend,
//!   and a grey reference of slope −½.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis};
use super::frame::{Figure, Frame, HEAD};
use super::key::{draw_keys, Glyph, Key};
use super::refs::{draw_slope_refs, reference_keys, slope_line_ends};
use super::style::{draw_line, width_shade, Dash, LineStyle};
use super::{colour, plot_err, png_and_svg, register_font};
use crate::error::{Error, Result};
use crate::studies::fit::Slope;
use crate::studies::limit::{LimitConfig, LimitResults, Trajectory, EXPECTED_SLOPE};
use crate::studies::store::file_stem;

/// Draws every figure of a limit study into `dir` and returns those written.
pub fn draw_limit(cfg: &LimitConfig, r: &LimitResults, dir: &Path) -> Result<Vec<Figure>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    let frame = Frame::new((1700, 382 + HEAD), 150);
    for (i, arm) in cfg.arms.iter().enumerate() {
        let stem = format!("limit_{}", file_stem(&arm.name));
        written.extend(png_and_svg!(dir, stem, frame, |root| {
            trajectories(cfg, r, (&arm.name, colour(i)), &frame, root)
        })?);
    }
    let frame = Frame::new((1100, 542 + HEAD), 330);
    written.extend(png_and_svg!(dir, "limit_convergence", frame, |root| {
        convergence(cfg, r, &frame, root)
    })?);
    Ok(written)
}

type Pick = fn(&Trajectory) -> &Vec<f64>;

/// The panels of a trajectory figure: (title, what it plots).
const PANELS: [(&str, Pick); 4] = [
    ("training loss", |t| &t.loss),
    ("rms of the outputs f", |t| &t.f_rms),
    ("rms of the readout overlap", |t| &t.readout_overlap_rms),
    ("rms of the bottleneck overlap", |t| &t.bottleneck_rms),
];

/// One arm's first-seed trajectories: a panel per quantity against step, a line per finite width (shades of the
/// arm's colour, light: narrow, dark: wide) and the computed n → ∞ limit in thick dashed black. Returns false when
/// the arm has no limit trajectory.
fn trajectories<DB: DrawingBackend>(
    cfg: &LimitConfig,
    r: &LimitResults,
    (arm, base): (&str, RGBColor),
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let seed = cfg.seeds[0];
    let Some(limit) = r.limits.get(&(arm.to_string(), seed)) else {
        return Ok(false);
    };
    let finite: Vec<(usize, &Trajectory)> = cfg
        .widths
        .iter()
        .filter_map(|&w| Some((w, r.finite.get(&(arm.to_string(), w, seed))?)))
        .collect();
    let title = format!("{arm}: finite widths approach the computed n → ∞ limit");
    let subtitle = format!(
        "seed {seed}; a line per width (light: narrow, dark: wide), dashed black: the limit"
    );
    let (body, legend) = frame.split(&root, &title, &subtitle)?;
    let x = Axis::steps(cfg.steps);
    let styles: Vec<LineStyle> = (0..finite.len())
        .map(|i| LineStyle::solid(width_shade(base, i, finite.len()), 2))
        .collect();
    let limit_style = LineStyle::solid(BLACK, 3).dashed(Dash::Dashed);
    for ((title, pick), area) in PANELS.iter().zip(body.split_evenly((1, 4))) {
        let y = linear_axis(
            finite
                .iter()
                .flat_map(|(_, t)| pick(t))
                .chain(pick(limit))
                .copied(),
        );
        let mut chart = panel(&area, title, (&x, "step t"), (&y, ""))?;
        let line = |t: &Trajectory| {
            pick(t)
                .iter()
                .enumerate()
                .map(|(s, &v)| (s as f64, v))
                .filter(|p| p.1.is_finite())
                .collect()
        };
        for ((_, t), style) in finite.iter().zip(&styles) {
            draw_line(&mut chart, line(t), *style)?;
        }
        draw_line(&mut chart, line(limit), limit_style)?;
    }
    let mut keys: Vec<Key> = finite
        .iter()
        .zip(&styles)
        .map(|((w, _), s)| Key::new(Glyph::Line(*s), format!("n = {w}")))
        .collect();
    keys.push(Key::new(Glyph::Line(limit_style), "limit n → ∞"));
    draw_keys(&legend, &keys)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// A linear axis over the finite `values` with a 5% margin.
fn linear_axis(values: impl Iterator<Item = f64>) -> Axis {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo < hi {
        let pad = 0.05 * (hi - lo);
        Axis::linear(lo - pad, hi + pad, 0.0)
    } else if lo.is_finite() {
        Axis::linear(lo - 1.0, lo + 1.0, 0.0)
    } else {
        Axis::linear(0.0, 1.0, 0.0)
    }
}

/// One arm's usable distances per width: (width, the seeds' distances).
type Distances = Vec<(usize, Vec<f64>)>;

/// Each arm's usable distances per width: (width, the seeds' distances).
fn distances(cfg: &LimitConfig, r: &LimitResults, arm: &str) -> Distances {
    cfg.widths
        .iter()
        .map(|&w| {
            let d = cfg
                .seeds
                .iter()
                .filter_map(|&s| r.finite.get(&(arm.to_string(), w, s)))
                .map(Trajectory::max_distance)
                .filter(|v| v.is_finite() && *v > 0.0)
                .collect();
            (w, d)
        })
        .collect()
}

/// The geometric mean per width (plotted units), where any seed is usable.
fn mean_line(d: &[(usize, Vec<f64>)]) -> Vec<(f64, f64)> {
    d.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(w, v)| {
            (
                (*w as f64).log2(),
                v.iter().map(|x| x.log2()).sum::<f64>() / v.len() as f64,
            )
        })
        .collect()
}

/// An arm's legend label: its fitted slope with the interval when there is one.
fn fit_label(arm: &str, fit: Option<&Slope>) -> String {
    match fit {
        Some(f) if f.has_interval() => {
            format!("{arm}: slope {:+.2} [{:+.2}, {:+.2}]", f.slope, f.lo, f.hi)
        }
        Some(f) => format!("{arm}: slope {:+.2} (one seed)", f.slope),
        None => format!("{arm}: no fit"),
    }
}

/// The distance of each finite run to its limit (its largest over steps) against width on log–log axes: a dot per
/// seed, the geometric mean per width joined by a line per arm, each arm's fitted slope in the legend, and a grey
/// reference of slope −½ through the first arm's mean at the smallest width. Diverged runs are left out.
fn convergence<DB: DrawingBackend>(
    cfg: &LimitConfig,
    r: &LimitResults,
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let x = Axis::widths(&cfg.widths);
    let arms: Vec<(usize, &str, Distances)> = cfg
        .arms
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.name.as_str(), distances(cfg, r, &a.name)))
        .collect();
    let anchor = arms.iter().find_map(|a| mean_line(&a.2).first().copied());
    let refs = anchor
        .map(|a| slope_line_ends(&x, a, &[EXPECTED_SLOPE]))
        .unwrap_or_default();
    let all = arms
        .iter()
        .flat_map(|a| a.2.iter().flat_map(|p| p.1.iter().copied()));
    let Some(y) = Axis::log_values(all.chain(refs).collect::<Vec<_>>()) else {
        return Ok(false);
    };
    let subtitle = "max over steps of the rms distance (outputs, readout and bottleneck overlaps); dots: seeds, line: geometric mean; grey: slope −½";
    let (body, legend) = frame.split(
        &root,
        "Distance of finite widths to the computed n → ∞ limit against width",
        subtitle,
    )?;
    let mut chart = panel(&body, "", (&x, "width n"), (&y, "distance to the limit"))?;
    let reference = [(EXPECTED_SLOPE, "slope −½")];
    if let Some(a) = anchor {
        draw_slope_refs(&mut chart, &x, a, &reference, None)?;
    }
    let mut keys = Vec::new();
    for (i, name, d) in &arms {
        let style = LineStyle::solid(colour(*i), 2);
        let dots = d
            .iter()
            .flat_map(|(w, v)| v.iter().map(move |v| ((*w as f64).log2(), v.log2())));
        let dot = style.colour.mix(0.7).filled();
        chart
            .draw_series(dots.map(|p| Circle::new(p, 3, dot)))
            .map_err(plot_err)?;
        draw_line(&mut chart, mean_line(d), style)?;
        let fit = r
            .convergence
            .iter()
            .find(|c| c.arm == *name)
            .and_then(|c| c.fit.as_ref());
        keys.push(Key::new(Glyph::Line(style), fit_label(name, fit)));
    }
    keys.push(Key::new(Glyph::Dot(RGBColor(90, 90, 90)), "one seed"));
    keys.extend(reference_keys(&reference, None));
    draw_keys(&legend, &keys)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}
