//! The two width figures of a sweep: the coordinate check (a quantity against width) and its fitted exponents.

use std::collections::BTreeSet;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis};
use super::key::{draw_keys, Glyph, Key};
use super::refs::{
    draw_level_refs, draw_slope_refs, reference_keys, slope_line_ends, REFERENCE_SLOPES,
};
use super::style::{draw_line, series_style, LineStyle};
use super::{describe, geo_mean, plot_err, series_names, split_legend, titled};
use crate::error::Result;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::{FitKey, FitRow, Grouped};

/// One series' values against width: (width, geometric mean, smallest seed, largest seed) where any seed is usable.
struct Curve {
    name: String,
    style: LineStyle,
    pts: Vec<(f64, f64, f64, f64)>,
}

/// The steps the coordinate check shows: 1, 2, 4, 8 and the last, where recorded.
fn coord_steps(cfg: &StudyConfig, grouped: &Grouped, layer: &str, quantity: Quantity) -> Vec<u64> {
    let recorded: BTreeSet<u64> = grouped
        .keys()
        .filter(|k| k.layer == layer && k.quantity == quantity)
        .map(|k| k.step)
        .collect();
    let wanted: BTreeSet<u64> = [1u64, 2, 4, 8, cfg.steps].into_iter().collect();
    wanted.intersection(&recorded).copied().collect()
}

/// The curves of every series at step `t`.
fn curves_at(
    cfg: &StudyConfig,
    grouped: &Grouped,
    layer: &str,
    quantity: Quantity,
    t: u64,
) -> Vec<Curve> {
    let usable = |x: &f64| x.is_finite() && *x > 0.0;
    series_names(cfg, grouped)
        .into_iter()
        .filter_map(|name| {
            let key = FitKey {
                series: name.clone(),
                layer: layer.into(),
                quantity,
                step: t,
            };
            let rows = grouped.get(&key)?;
            let pts = cfg
                .widths
                .iter()
                .zip(rows)
                .filter_map(|(&w, row)| {
                    let ok: Vec<f64> = row.iter().copied().filter(usable).collect();
                    let (lo, hi) = ok
                        .iter()
                        .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
                    (!ok.is_empty()).then(|| (w as f64, geo_mean(row), lo, hi))
                })
                .collect();
            Some(Curve {
                style: series_style(cfg, &name),
                name,
                pts,
            })
        })
        .collect()
}

/// Where the reference slopes of a panel pass: the first series' mean at its smallest width (plotted units).
fn anchor(curves: &[Curve]) -> Option<(f64, f64)> {
    let p = curves.iter().find_map(|c| c.pts.first())?;
    Some((p.0.log2(), p.1.log2()))
}

/// The value axis the panels share: every seed's value and the ends of the reference lines.
fn coord_axis(x: &Axis, panels: &[(u64, Vec<Curve>)], tol: f64) -> Option<Axis> {
    let curves = panels.iter().flat_map(|(_, cs)| cs.iter());
    let data = curves.flat_map(|c| c.pts.iter().flat_map(|p| [p.2, p.3]));
    let refs = panels
        .iter()
        .filter_map(|(_, cs)| anchor(cs))
        .flat_map(|a| slope_line_ends(x, a, &[0.0, -0.5, tol, -tol]));
    Axis::log_values(data.chain(refs).collect::<Vec<_>>())
}

/// The coordinate check's legend: every series drawn in any panel, the seed band and the references.
fn coord_keys(panels: &[(u64, Vec<Curve>)], tol: f64) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    for c in panels.iter().flat_map(|(_, cs)| cs.iter()) {
        if !keys.iter().any(|k| k.label == c.name) {
            keys.push(Key::new(Glyph::Line(c.style), &c.name));
        }
    }
    let grey = RGBColor(90, 90, 90).mix(0.2);
    keys.push(Key::new(Glyph::Band(grey), "seed range"));
    keys.extend(reference_keys(&REFERENCE_SLOPES, Some(tol)));
    keys
}

/// The μP coordinate check of `quantity` at `layer`: a panel per step (1, 2, 4, 8 and the last), the quantity against
/// width on log–log axes, a line per series (geometric mean over seeds; colour = arm, dash = c) with a band spanning
/// the seeds, and grey reference slopes 0 and −½ with the flat wedge ±τ through the first series' value at the
/// smallest width. Returns false when there is nothing to draw.
pub(super) fn coord<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    layer: &str,
    quantity: Quantity,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let x = Axis::widths(&cfg.widths);
    let panels: Vec<(u64, Vec<Curve>)> = coord_steps(cfg, grouped, layer, quantity)
        .into_iter()
        .map(|t| (t, curves_at(cfg, grouped, layer, quantity, t)))
        .collect();
    let tol = cfg.flat_tol;
    let Some(y) = coord_axis(&x, &panels, tol) else {
        return Ok(false);
    };
    let subtitle = format!(
        "{quantity} at {layer}; line: geometric mean over {} seeds, band: smallest to largest seed; grey: slopes 0 and −½ through the first series",
        cfg.seeds.len()
    );
    let body = titled(
        &root,
        &format!("{} against width", describe(quantity)),
        &subtitle,
    )?;
    let (body, legend) = split_legend(&body, 230);
    for (area, (t, curves)) in body.split_evenly((1, panels.len())).iter().zip(&panels) {
        let mut chart = panel(
            area,
            &format!("step t = {t}"),
            (&x, "width n"),
            (&y, &quantity.to_string()),
        )?;
        if let Some(a) = anchor(curves) {
            draw_slope_refs(&mut chart, &x, a, &REFERENCE_SLOPES, Some(tol))?;
        }
        for c in curves {
            draw_curve(&mut chart, c)?;
        }
    }
    let keys = coord_keys(&panels, tol);
    draw_keys(&legend, &keys)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// One series of the coordinate check: its seed band, its mean line and a dot per width.
fn draw_curve<DB: DrawingBackend>(chart: &mut super::axes::Chart<'_, DB>, c: &Curve) -> Result<()> {
    let lg = |p: &(f64, f64, f64, f64)| (p.0.log2(), p.1.log2(), p.2.log2(), p.3.log2());
    let pts: Vec<_> = c.pts.iter().map(lg).collect();
    let band: Vec<(f64, f64)> = pts
        .iter()
        .map(|p| (p.0, p.3))
        .chain(pts.iter().rev().map(|p| (p.0, p.2)))
        .collect();
    let fill = c.style.colour.mix(0.15);
    chart
        .draw_series(std::iter::once(Polygon::new(band, fill)))
        .map_err(plot_err)?;
    draw_line(chart, pts.iter().map(|p| (p.0, p.1)).collect(), c.style)?;
    let dot = c.style.colour.filled();
    chart
        .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, dot)))
        .map_err(plot_err)?;
    Ok(())
}

/// The plotted range of the slope figure: the slopes, intervals and predictions, and at least [−0.6, 0.6].
fn slope_range(rows: &[&FitRow]) -> (f64, f64) {
    let values = rows.iter().flat_map(|r| {
        let interval = r.fit.has_interval().then_some([r.fit.lo, r.fit.hi]);
        [r.fit.slope]
            .into_iter()
            .chain(interval.into_iter().flatten())
            .chain(r.predicted)
    });
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((-0.6f64, 0.6f64), |(a, b), v| (a.min(v), b.max(v)));
    (lo - 0.1, hi + 0.1)
}

/// The fitted width exponent of `quantity` at `layer` against step: a line per series (colour = arm, dash = c), its
/// 95% Student-t interval over seeds as a bar where the fit has one and a hollow marker where it has none (one
/// seed), the theory's predicted exponent as a cross, grey levels 0 and −½ and the flat band [−τ, τ] shaded. Returns
/// false when there is nothing to draw.
pub(super) fn slopes<DB: DrawingBackend>(
    cfg: &StudyConfig,
    fits: &[FitRow],
    layer: &str,
    quantity: Quantity,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let rows: Vec<&FitRow> = fits
        .iter()
        .filter(|r| r.key.layer == layer && r.key.quantity == quantity && r.fit.slope.is_finite())
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let tmax = rows.iter().map(|r| r.key.step).max().unwrap_or(1) as f64;
    let x = Axis::linear(-0.5, tmax + 0.5, 1.0);
    let (ylo, yhi) = slope_range(&rows);
    let y = Axis::linear(ylo, yhi, 0.0);
    let title = format!(
        "Width exponent of the {} at each step",
        describe(quantity).to_lowercase()
    );
    let subtitle = format!("slope of log {quantity} against log width at {layer}; bars: 95% Student-t interval over seeds; × predicted by the theory");
    let body = titled(&root, &title, &subtitle)?;
    let (body, legend) = split_legend(&body, 250);
    let mut chart = panel(&body, "", (&x, "step t"), (&y, "width exponent (slope)"))?;
    let tol = cfg.flat_tol;
    draw_level_refs(&mut chart, &x, &REFERENCE_SLOPES, Some(tol))?;
    let mut names: Vec<String> = Vec::new();
    for r in &rows {
        if !names.contains(&r.key.series) {
            names.push(r.key.series.clone());
        }
    }
    let order = super::series_names_in(cfg, &names);
    let k = order.len() as f64;
    for (i, name) in order.iter().enumerate() {
        let off = (i as f64 - (k - 1.0) / 2.0) * 0.08;
        let mut pts: Vec<&FitRow> = rows
            .iter()
            .copied()
            .filter(|r| &r.key.series == name)
            .collect();
        pts.sort_by_key(|r| r.key.step);
        draw_slope_series(&mut chart, &pts, off, series_style(cfg, name))?;
    }
    draw_keys(&legend, &slope_keys(cfg, &order, &rows, tol))?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// One series of the slope figure, shifted by `off` steps so that series do not hide each other.
fn draw_slope_series<DB: DrawingBackend>(
    chart: &mut super::axes::Chart<'_, DB>,
    pts: &[&FitRow],
    off: f64,
    style: LineStyle,
) -> Result<()> {
    let at = |r: &FitRow| r.key.step as f64 + off;
    draw_line(
        chart,
        pts.iter().map(|r| (at(r), r.fit.slope)).collect(),
        style,
    )?;
    let c = style.colour;
    let (with, without): (Vec<&&FitRow>, Vec<&&FitRow>) =
        pts.iter().partition(|r| r.fit.has_interval());
    chart
        .draw_series(
            with.iter().map(|r| {
                ErrorBar::new_vertical(at(r), r.fit.lo, r.fit.slope, r.fit.hi, c.filled(), 6)
            }),
        )
        .map_err(plot_err)?;
    chart
        .draw_series(
            without
                .iter()
                .map(|r| Circle::new((at(r), r.fit.slope), 4, c.stroke_width(2))),
        )
        .map_err(plot_err)?;
    chart
        .draw_series(pts.iter().filter_map(|r| {
            r.predicted
                .map(|p| Cross::new((at(r), p), 6, c.stroke_width(2)))
        }))
        .map_err(plot_err)?;
    Ok(())
}

/// The slope figure's legend: the series, then what the marks mean (only those drawn), then the references.
fn slope_keys(cfg: &StudyConfig, names: &[String], rows: &[&FitRow], tol: f64) -> Vec<Key> {
    let mut keys: Vec<Key> = names
        .iter()
        .map(|n| Key::new(Glyph::Line(series_style(cfg, n)), n))
        .collect();
    let grey = RGBColor(80, 80, 80);
    if rows.iter().any(|r| r.fit.has_interval()) {
        keys.push(Key::new(Glyph::Bar(grey), "95% interval over seeds"));
    }
    if rows.iter().any(|r| !r.fit.has_interval()) {
        keys.push(Key::new(Glyph::Hollow(grey), "no interval (one seed)"));
    }
    if rows.iter().any(|r| r.predicted.is_some()) {
        keys.push(Key::new(Glyph::Cross(grey), "predicted (theory)"));
    }
    keys.extend(reference_keys(
        &[(0.0, "slope 0"), (-0.5, "slope −½")],
        Some(tol),
    ));
    keys
}
