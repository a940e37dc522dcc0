//! The μP coordinate check: quantities against width on log–log axes, a panel per shown step, in rows (one row for an
//! MLP's series; a row per series for a transformer block's maps or activations).

use std::collections::BTreeSet;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis, Chart};
use super::frame::Frame;
use super::key::{draw_keys, Glyph, Key};
use super::refs::{draw_slope_refs, reference_keys, slope_line_ends, REFERENCE_SLOPES};
use super::style::{draw_line, LineStyle};
use super::{geo_mean, plot_err};
use crate::error::Result;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::{FitKey, Grouped};

/// One line of a coordinate check: the values of `(series, layer, quantity)` and how they look.
pub(super) struct Line {
    /// The legend's label.
    pub label: String,
    /// Series.
    pub series: String,
    /// Layer.
    pub layer: String,
    /// Quantity.
    pub quantity: Quantity,
    /// The look.
    pub style: LineStyle,
}

/// A row of panels (one per shown step), all on one value axis.
pub(super) struct Row {
    /// What the row shows, leading each panel's caption (empty: the step alone).
    pub caption: String,
    /// Its lines.
    pub lines: Vec<Line>,
}

/// A coordinate-check figure.
pub(super) struct CoordCheck {
    /// Plain-words title.
    pub title: String,
    /// Names and details under it.
    pub subtitle: String,
    /// The value axis's description.
    pub y_desc: String,
    /// A heading over the lines in the legend (empty: none).
    pub key_heading: String,
    /// The rows.
    pub rows: Vec<Row>,
    /// The steps shown, a panel each.
    pub steps: Vec<u64>,
}

/// Panel size in pixels and the key strip's width.
const PANEL: (u32, u32) = (290, 260);
const ONE_ROW_HEIGHT: u32 = 412;
const KEY: u32 = 230;

/// The steps a coordinate check shows: 1, 2, 4, 8 and the last (and 0 when `initial`), where any of `lines` recorded
/// them.
pub(super) fn shown_steps(
    cfg: &StudyConfig,
    grouped: &Grouped,
    lines: &[&Line],
    initial: bool,
) -> Vec<u64> {
    let recorded: BTreeSet<u64> = grouped
        .keys()
        .filter(|k| {
            lines
                .iter()
                .any(|l| k.layer == l.layer && k.quantity == l.quantity)
        })
        .map(|k| k.step)
        .collect();
    let mut wanted: BTreeSet<u64> = [1u64, 2, 4, 8, cfg.steps].into_iter().collect();
    if initial {
        wanted.insert(0);
    }
    wanted.intersection(&recorded).copied().collect()
}

impl CoordCheck {
    /// The layout: a panel per step and row (a single row is taller), the legend at the right.
    pub fn frame(&self) -> Frame {
        let cols = self.steps.len().max(1) as u32;
        let rows = self.rows.len().max(1) as u32;
        let height = if rows == 1 {
            ONE_ROW_HEIGHT
        } else {
            PANEL.1 * rows
        };
        Frame::new((PANEL.0 * cols + KEY, height + super::frame::HEAD), KEY)
    }

    /// Draws the figure (see the module) into `root` laid out as `frame`; false when there is nothing to draw.
    pub fn draw<DB: DrawingBackend>(
        &self,
        cfg: &StudyConfig,
        grouped: &Grouped,
        frame: &Frame,
        root: DrawingArea<DB, Shift>,
    ) -> Result<bool> {
        let x = Axis::widths(&cfg.widths);
        let tol = cfg.flat_tol;
        let rows: Vec<Vec<Vec<Curve>>> = self
            .rows
            .iter()
            .map(|row| {
                self.steps
                    .iter()
                    .map(|&t| curves(cfg, grouped, row, t))
                    .collect()
            })
            .collect();
        let axes: Vec<Option<Axis>> = rows.iter().map(|r| value_axis(&x, r, tol)).collect();
        if axes.iter().all(Option::is_none) {
            return Ok(false);
        }
        let (body, legend) = frame.split(&root, &self.title, &self.subtitle)?;
        let cells = body.split_evenly((self.rows.len(), self.steps.len()));
        for (r, (row, y)) in self.rows.iter().zip(&axes).enumerate() {
            let Some(y) = y else { continue };
            for (c, &t) in self.steps.iter().enumerate() {
                let caption = match row.caption.as_str() {
                    "" => format!("step t = {t}"),
                    s => format!("{s}, t = {t}"),
                };
                let area = &cells[r * self.steps.len() + c];
                let mut chart = panel(area, &caption, (&x, "width n"), (y, &self.y_desc))?;
                let drawn = &rows[r][c];
                if let Some(a) = anchor(drawn) {
                    draw_slope_refs(&mut chart, &x, a, &REFERENCE_SLOPES, Some(tol))?;
                }
                for curve in drawn {
                    draw_curve(&mut chart, curve)?;
                }
            }
        }
        draw_keys(&legend, &self.keys(tol))?;
        root.present().map_err(plot_err)?;
        Ok(true)
    }

    /// The legend: every line's label once (in row order), the seed band and the references.
    fn keys(&self, tol: f64) -> Vec<Key> {
        let mut keys: Vec<Key> = Vec::new();
        if !self.key_heading.is_empty() {
            keys.push(Key::new(Glyph::Heading, &self.key_heading));
        }
        for line in self.rows.iter().flat_map(|r| &r.lines) {
            if !keys.iter().any(|k| k.label == line.label) {
                keys.push(Key::new(Glyph::Line(line.style), &line.label));
            }
        }
        keys.push(Key::new(
            Glyph::Band(RGBColor(90, 90, 90).mix(0.2)),
            "seed range",
        ));
        keys.extend(reference_keys(&REFERENCE_SLOPES, Some(tol)));
        keys
    }
}

/// One line's values against width: (width, geometric mean, smallest seed, largest seed) where any seed is usable.
struct Curve {
    style: LineStyle,
    pts: Vec<(f64, f64, f64, f64)>,
}

/// The curves of `row` at step `t` (lines without a usable value left out).
fn curves(cfg: &StudyConfig, grouped: &Grouped, row: &Row, t: u64) -> Vec<Curve> {
    let usable = |x: &f64| x.is_finite() && *x > 0.0;
    row.lines
        .iter()
        .filter_map(|line| {
            let key = FitKey {
                series: line.series.clone(),
                layer: line.layer.clone(),
                quantity: line.quantity,
                step: t,
            };
            let pts: Vec<_> = cfg
                .widths
                .iter()
                .zip(grouped.get(&key)?)
                .filter_map(|(&w, seeds)| {
                    let ok: Vec<f64> = seeds.iter().copied().filter(usable).collect();
                    let lo = ok.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = ok.iter().copied().fold(0.0, f64::max);
                    (!ok.is_empty()).then(|| (w as f64, geo_mean(seeds), lo, hi))
                })
                .collect();
            (!pts.is_empty()).then_some(Curve {
                style: line.style,
                pts,
            })
        })
        .collect()
}

/// Where the reference slopes of a panel pass: the first line's mean at its smallest width (plotted units).
fn anchor(curves: &[Curve]) -> Option<(f64, f64)> {
    let p = curves.iter().find_map(|c| c.pts.first())?;
    Some((p.0.log2(), p.1.log2()))
}

/// The value axis of a row: every seed's value and the ends of the reference lines in any of its panels.
fn value_axis(x: &Axis, panels: &[Vec<Curve>], tol: f64) -> Option<Axis> {
    let data = panels
        .iter()
        .flatten()
        .flat_map(|c| c.pts.iter().flat_map(|p| [p.2, p.3]));
    let refs = panels
        .iter()
        .filter_map(|cs| anchor(cs))
        .flat_map(|a| slope_line_ends(x, a, &[0.0, -0.5, tol, -tol]));
    Axis::log_values(data.chain(refs).collect::<Vec<_>>())
}

/// One line of a panel: its seed band, its mean line and a dot per width.
fn draw_curve<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, c: &Curve) -> Result<()> {
    let lg = |p: &(f64, f64, f64, f64)| (p.0.log2(), p.1.log2(), p.2.log2(), p.3.log2());
    let pts: Vec<_> = c.pts.iter().map(lg).collect();
    let band: Vec<(f64, f64)> = pts
        .iter()
        .map(|p| (p.0, p.3))
        .chain(pts.iter().rev().map(|p| (p.0, p.2)))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(
            band,
            c.style.colour.mix(0.15),
        )))
        .map_err(plot_err)?;
    draw_line(chart, pts.iter().map(|p| (p.0, p.1)).collect(), c.style)?;
    let dot = c.style.colour.filled();
    chart
        .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, dot)))
        .map_err(plot_err)?;
    Ok(())
}
