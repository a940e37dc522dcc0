//! Figures of a learning-rate study, in the conventions of the sweep figures (colour = arm, dash = rate exponent,
//! widths as shades of the arm's colour from light (narrow) to dark (wide), log axes labelled with values, keys
//! beside the data):
//! - `lr_loss.{png,svg}`: final training loss against the learning rate (the μTransfer plot), a panel per series (a row
//!   per arm, a column per exponent) on one shared loss axis, a line per width (median over seeds), each width's best
//!   rate marked;
//! - `lr_best.{png,svg}`: the best rate η* against width on log axes, a line per series through the median-loss η*, a
//!   dot per seed's η*, the fitted η* ∝ n^slope as a thin line, grey reference slopes 0 (one rate transfers) and −½
//!   with the flat band;
//! - `lr_plane_n<width>.{png,svg}`: the LoRA+ plane, final loss over (η_A, η_B) with its colour bar, near-best cells
//!   outlined, diverged cells grey.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis, Chart};
use super::frame::{Figure, Frame, HEAD};
use super::key::{colour_bar, draw_keys, Glyph, Key};
use super::refs::{draw_slope_refs, reference_keys, slope_line_ends, REFERENCE_SLOPES};
use super::style::{arm_colour, draw_line, series_style, width_shade, LineStyle};
use super::{by_arm, plot_err, png_and_svg, register_font};
use crate::error::{Error, Result};
use crate::studies::config::StudyConfig;
use crate::studies::lr::{LineSummary, LrResults, PlaneCell};

/// Draws every figure of a learning-rate study into `dir` and returns those written.
pub fn draw_lr(cfg: &StudyConfig, r: &LrResults, dir: &Path) -> Result<Vec<Figure>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let grid = by_arm(cfg, cfg.series().into_iter().map(|s| s.0).collect());
    let cols = grid.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let frame = Frame::new(
        (420 * cols + 190, 380 * grid.len().max(1) as u32 + HEAD),
        190,
    );
    let mut written = Vec::new();
    written.extend(png_and_svg!(dir, "lr_loss", frame, |root| {
        loss_panels(cfg, r, &grid, &frame, root)
    })?);
    let frame = Frame::new((800 + 380, 500 + HEAD), 380);
    written.extend(png_and_svg!(dir, "lr_best", frame, |root| {
        best_vs_width(cfg, r, &frame, root)
    })?);
    let mut widths: Vec<usize> = r.plane.iter().map(|c| c.width).collect();
    widths.dedup();
    let frame = Frame::new((620 + 210, 560 + HEAD), 210);
    for w in widths {
        written.extend(png_and_svg!(
            dir,
            format!("lr_plane_n{w}"),
            frame,
            |root| { plane(cfg, r, w, &frame, root) }
        )?);
    }
    Ok(written)
}

/// The loss axis of `lr_loss`: from the smallest final loss to 3× the largest initial loss (the basin is what
/// matters; losses above, at diverging rates, are drawn on the top edge). `None` when nothing is usable.
fn loss_axis(r: &LrResults) -> Option<(Axis, f64)> {
    let top = 3.0
        * r.lines
            .iter()
            .map(|l| l.initial)
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(f64::NEG_INFINITY, f64::max);
    let low = r
        .lines
        .iter()
        .flat_map(|l| l.train.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= top)
        .fold(f64::INFINITY, f64::min);
    (top.is_finite() && low <= top)
        .then(|| (Axis::log_between(low.log2() - 0.3, top.log2() + 0.05), top))
}

/// Final training loss against rate: a panel per series of `grid`, a line per width (the series's dash, a shade of
/// its arm's colour), each width's best rate as a dot. False when nothing is usable.
fn loss_panels<DB: DrawingBackend>(
    cfg: &StudyConfig,
    r: &LrResults,
    grid: &[Vec<String>],
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let (Some((y, top)), Some(&first), Some(&last)) =
        (loss_axis(r), r.rates.first(), r.rates.last())
    else {
        return Ok(false);
    };
    let x = Axis::log_between(first.log2() - 0.3, last.log2() + 0.3);
    let subtitle = "median over seeds; a line per width (light: narrow, dark: wide), ● its best rate η*; one shared loss axis, losses above 3× the initial loss on the top edge";
    let (body, legend) = frame.split(
        &root,
        "Final training loss against the learning rate",
        subtitle,
    )?;
    let cols = grid.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let cells = body.split_evenly((grid.len().max(1), cols));
    for (ri, row) in grid.iter().enumerate() {
        for (ci, series) in row.iter().enumerate() {
            let mut chart = panel(
                &cells[ri * cols + ci],
                series,
                (&x, "learning rate η"),
                (&y, "final loss"),
            )?;
            let lines: Vec<&LineSummary> = r.lines.iter().filter(|l| &l.series == series).collect();
            for (wi, l) in lines.iter().enumerate() {
                let shade = width_shade(arm_colour(cfg, series), wi, lines.len());
                let style = LineStyle {
                    colour: shade,
                    ..series_style(cfg, series)
                };
                draw_rate_line(&mut chart, r, l, style, top)?;
            }
        }
    }
    draw_keys(&legend, &width_keys(cfg))?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// One width's line of final losses against rate (capped at `top`) and its best rate.
fn draw_rate_line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    r: &LrResults,
    l: &LineSummary,
    style: LineStyle,
    top: f64,
) -> Result<()> {
    let pts: Vec<(f64, f64)> = r
        .rates
        .iter()
        .zip(&l.train)
        .filter(|(_, v)| v.is_finite() && **v > 0.0)
        .map(|(x, v)| (x.log2(), v.min(top).log2()))
        .collect();
    draw_line(chart, pts, style)?;
    if let Some((eta, _)) = l
        .best
        .filter(|_| l.best_loss.is_finite() && l.best_loss > 0.0)
    {
        let p = (eta.log2(), l.best_loss.min(top).log2());
        chart
            .draw_series(std::iter::once(Circle::new(p, 5, style.colour.filled())))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// The legend of `lr_loss`: the shade of each width, and the best-rate dot.
fn width_keys(cfg: &StudyConfig) -> Vec<Key> {
    let grey = RGBColor(90, 90, 90);
    let mut keys = vec![Key::new(Glyph::Heading, "width (in the arm's colour)")];
    let k = cfg.widths.len();
    for (wi, w) in cfg.widths.iter().enumerate() {
        let shade = width_shade(grey, wi, k);
        keys.push(Key::new(
            Glyph::Line(LineStyle::solid(shade, 2)),
            format!("n = {w}"),
        ));
    }
    keys.push(Key::new(Glyph::Heading, ""));
    keys.push(Key::new(Glyph::Dot(grey), "best rate η* (median)"));
    keys
}

/// Points (log₂ width, log₂ η*) of a figure.
type Points = Vec<(f64, f64)>;

/// Each series' (log₂ width, log₂ η*) of the median-loss best rate, and of every seed's.
fn best_points(r: &LrResults, series: &str) -> (Points, Points) {
    let lines: Vec<&LineSummary> = r.lines.iter().filter(|l| l.series == series).collect();
    let usable = |v: &f64| v.is_finite() && *v > 0.0;
    let median = lines
        .iter()
        .filter_map(|l| l.best.map(|b| ((l.width as f64).log2(), b.0)))
        .filter(|p| usable(&p.1))
        .map(|(x, v)| (x, v.log2()))
        .collect();
    let seeds = lines
        .iter()
        .flat_map(|l| {
            let x = (l.width as f64).log2();
            l.seed_best
                .iter()
                .filter(|v| usable(v))
                .map(move |v| (x, v.log2()))
        })
        .collect();
    (median, seeds)
}

/// The fitted η* ∝ n^slope: slope p through the centroid of the per-seed η* (the OLS line's), across `x`.
fn fitted_line(x: &Axis, seeds: &[(f64, f64)], slope: f64) -> Vec<(f64, f64)> {
    if seeds.is_empty() || !slope.is_finite() {
        return Vec::new();
    }
    let k = seeds.len() as f64;
    let (mx, my) = seeds
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / k, b + p.1 / k));
    [x.lo + 0.2, x.hi - 0.2]
        .map(|xe| (xe, my + slope * (xe - mx)))
        .to_vec()
}

/// A series' legend label: its drift with the interval when there is one.
fn drift_label(r: &LrResults, series: &str) -> String {
    match r
        .drifts
        .iter()
        .find(|d| d.series == series)
        .and_then(|d| d.fit.as_ref())
    {
        Some(f) if f.has_interval() => {
            format!(
                "{series}: η* ∝ n^{:+.2} [{:+.2}, {:+.2}]",
                f.slope, f.lo, f.hi
            )
        }
        Some(f) => format!("{series}: η* ∝ n^{:+.2} (one seed)", f.slope),
        None => format!("{series}: no fit"),
    }
}

/// The best rate against width: a line per series (colour = arm, dash = c), a dot per seed, the fitted law thin, and
/// grey reference slopes 0 and −½ (flat band ±τ) through the first series' η* at the smallest width.
fn best_vs_width<DB: DrawingBackend>(
    cfg: &StudyConfig,
    r: &LrResults,
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let x = Axis::widths(&cfg.widths);
    let series: Vec<String> = cfg.series().into_iter().map(|s| s.0).collect();
    let points: Vec<_> = series.iter().map(|s| best_points(r, s)).collect();
    let anchor = points.iter().find_map(|p| p.0.first().copied());
    let tol = cfg.flat_tol;
    let refs = anchor
        .map(|a| slope_line_ends(&x, a, &[0.0, -0.5, tol, -tol]))
        .unwrap_or_default();
    let values = points
        .iter()
        .flat_map(|(m, s)| m.iter().chain(s).map(|p| 2f64.powf(p.1)));
    let Some(y) = Axis::log_values(values.chain(refs).collect::<Vec<_>>()) else {
        return Ok(false);
    };
    let subtitle = "line: η* of the median loss over seeds; dots: each seed's η*; thin: the fitted η* ∝ n^slope; grey: slopes 0 (one rate transfers) and −½";
    let (body, legend) = frame.split(&root, "Best learning rate against width", subtitle)?;
    let mut chart = panel(&body, "", (&x, "width n"), (&y, "best rate η*"))?;
    if let Some(a) = anchor {
        draw_slope_refs(&mut chart, &x, a, &REFERENCE_SLOPES, Some(tol))?;
    }
    let mut keys = Vec::new();
    for (name, (median, seeds)) in series.iter().zip(&points) {
        let style = series_style(cfg, name);
        let slope = r
            .drifts
            .iter()
            .find(|d| &d.series == name)
            .and_then(|d| d.fit.as_ref())
            .map(|f| f.slope);
        let thin = LineStyle { width: 1, ..style };
        draw_line(
            &mut chart,
            fitted_line(&x, seeds, slope.unwrap_or(f64::NAN)),
            thin,
        )?;
        draw_line(&mut chart, median.clone(), style)?;
        let dot = style.colour.mix(0.6).filled();
        chart
            .draw_series(seeds.iter().map(|&p| Circle::new(p, 3, dot)))
            .map_err(plot_err)?;
        keys.push(Key::new(Glyph::Line(style), drift_label(r, name)));
    }
    let grey = RGBColor(90, 90, 90);
    keys.push(Key::new(
        Glyph::Line(LineStyle::solid(grey, 1)),
        "fitted η* ∝ n^slope",
    ));
    keys.push(Key::new(Glyph::Dot(grey), "one seed's η*"));
    keys.extend(reference_keys(&REFERENCE_SLOPES, Some(tol)));
    draw_keys(&legend, &keys)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// The colour of a plane cell at fraction `f` ∈ [0, 1] of the log-loss range: dark blue (low) to pale sand (high).
fn loss_colour(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(mix(30.0, 255.0), mix(60.0, 220.0), mix(120.0, 180.0))
}

/// The grey of a diverged cell.
const DIVERGED: RGBColor = RGBColor(200, 200, 200);

/// The LoRA+ plane at `width`: a cell per (η_A, η_B) coloured by the log of its median final loss, near-best cells
/// outlined white, diverged cells grey; a colour bar of the loss and the legend in the key strip.
fn plane<DB: DrawingBackend>(
    cfg: &StudyConfig,
    r: &LrResults,
    width: usize,
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let cells: Vec<&PlaneCell> = r.plane.iter().filter(|c| c.width == width).collect();
    let usable = |c: &PlaneCell| c.loss.is_finite() && c.loss > 0.0;
    let losses: Vec<f64> = cells.iter().filter(|c| usable(c)).map(|c| c.loss).collect();
    let Some(scale) = Axis::log_values(losses) else {
        return Ok(false);
    };
    let rates = |f: fn(&PlaneCell) -> f64| {
        let mut v: Vec<f64> = cells.iter().map(|c| f(c)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (rates(|c| c.eta_a), rates(|c| c.eta_b));
    let (x, y) = (Axis::grid(&xs), Axis::grid(&ys));
    let title = format!("LoRA+ learning rates at n = {width}: final training loss");
    let subtitle = "median over seeds at each (η_A, η_B); dark: low loss";
    let (body, strip) = frame.split(&root, &title, subtitle)?;
    let mut chart = panel(&body, "", (&x, "rate of A, η_A"), (&y, "rate of B, η_B"))?;
    let f = |loss: f64| (loss.log2() - scale.lo) / (scale.hi - scale.lo);
    let half = |a: &Axis, v: &[f64]| (a.hi - a.lo) / (2.0 * v.len().max(1) as f64);
    let (hx, hy) = (half(&x, &xs), half(&y, &ys));
    for c in &cells {
        let (cx, cy) = (c.eta_a.log2(), c.eta_b.log2());
        let fill = if usable(c) {
            loss_colour(f(c.loss))
        } else {
            DIVERGED
        };
        let rect = [(cx - hx, cy - hy), (cx + hx, cy + hy)];
        chart
            .draw_series(std::iter::once(Rectangle::new(rect, fill.filled())))
            .map_err(plot_err)?;
        if c.near_best {
            let inner = [
                (cx - 0.8 * hx, cy - 0.8 * hy),
                (cx + 0.8 * hx, cy + 0.8 * hy),
            ];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    inner,
                    WHITE.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
    }
    let diverged = cells.iter().any(|c| !usable(c));
    plane_key(cfg, (&scale, diverged), frame, &strip)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// The plane's key strip: the colour bar of the loss `scale` over its top two thirds, below it what the outline means
/// and, when some cell `diverged`, the grey.
fn plane_key<DB: DrawingBackend>(
    cfg: &StudyConfig,
    (scale, diverged): (&Axis, bool),
    frame: &Frame,
    strip: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let (bar, keys) = strip.split_vertically(frame.height.saturating_sub(HEAD) * 2 / 3);
    let ticks: Vec<(f64, String)> = scale
        .ticks()
        .into_iter()
        .map(|(p, label)| ((p - scale.lo) / (scale.hi - scale.lo), label))
        .collect();
    colour_bar(&bar, "final loss", &ticks, loss_colour)?;
    let near = cfg
        .lr_grid
        .as_ref()
        .map(|g| g.near_best * 100.0)
        .unwrap_or(f64::NAN);
    let mut legend = vec![Key::new(
        Glyph::Cell(loss_colour(0.0), true),
        format!("within {near}% of the best"),
    )];
    if diverged {
        legend.push(Key::new(Glyph::Cell(DIVERGED, false), "diverged"));
    }
    draw_keys(&keys, &legend)
}
