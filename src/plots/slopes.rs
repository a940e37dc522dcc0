//! Fitted width exponents against step: a panel per (layer, quantity), a line per series with its interval, the
//! theory's prediction, and the levels 0 and −½ over the shaded flat band.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis, Chart};
use super::frame::Frame;
use super::key::{draw_keys, Glyph, Key};
use super::refs::{draw_level_refs, reference_keys, REFERENCE_SLOPES};
use super::style::{draw_line, series_style, LineStyle};
use super::{plot_err, series_names_in};
use crate::error::Result;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::FitRow;

/// One panel: the fits of `quantity` at `layer`.
pub(super) struct SlopePanel {
    /// Its caption (empty: none).
    pub caption: String,
    /// Layer.
    pub layer: String,
    /// Quantity.
    pub quantity: Quantity,
}

/// A figure of fitted exponents.
pub(super) struct SlopeFigure {
    /// Plain-words title.
    pub title: String,
    /// Names and details under it.
    pub subtitle: String,
    /// The panels, filled row by row.
    pub panels: Vec<SlopePanel>,
    /// Panels per row.
    pub columns: usize,
}

const ONE_PANEL: (u32, u32) = (850, 500);
const PANEL: (u32, u32) = (430, 320);
const KEY: u32 = 250;

impl SlopeFigure {
    /// The layout: one large panel, or a grid of `columns`; the legend at the right.
    pub fn frame(&self) -> Frame {
        let (cols, rows) = self.grid();
        let (w, h) = if self.panels.len() <= 1 {
            ONE_PANEL
        } else {
            (PANEL.0 * cols as u32, PANEL.1 * rows as u32)
        };
        Frame::new((w + KEY, h + super::frame::HEAD), KEY)
    }

    fn grid(&self) -> (usize, usize) {
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        (cols, self.panels.len().div_ceil(cols).max(1))
    }

    /// The finite fits of a panel.
    fn rows<'a>(&self, p: &SlopePanel, fits: &'a [FitRow]) -> Vec<&'a FitRow> {
        fits.iter()
            .filter(|r| {
                r.key.layer == p.layer && r.key.quantity == p.quantity && r.fit.slope.is_finite()
            })
            .collect()
    }

    /// Draws the figure into `root` laid out as `frame`: every panel on one step axis and one exponent axis. False
    /// when no panel has a finite fit.
    pub fn draw<DB: DrawingBackend>(
        &self,
        cfg: &StudyConfig,
        fits: &[FitRow],
        frame: &Frame,
        root: DrawingArea<DB, Shift>,
    ) -> Result<bool> {
        let per_panel: Vec<Vec<&FitRow>> = self.panels.iter().map(|p| self.rows(p, fits)).collect();
        let all: Vec<&FitRow> = per_panel.iter().flatten().copied().collect();
        if all.is_empty() {
            return Ok(false);
        }
        let tmax = all.iter().map(|r| r.key.step).max().unwrap_or(1) as f64;
        let x = Axis::linear(-0.5, tmax + 0.5, 1.0);
        let (ylo, yhi) = slope_range(&all);
        let y = Axis::linear(ylo, yhi, 0.0);
        let names = series_in(cfg, &all);
        let (body, legend) = frame.split(&root, &self.title, &self.subtitle)?;
        let (cols, rows) = self.grid();
        let cells = body.split_evenly((rows, cols));
        for ((p, rows), area) in self.panels.iter().zip(&per_panel).zip(&cells) {
            let mut chart = panel(area, &p.caption, (&x, "step t"), (&y, "width exponent"))?;
            draw_level_refs(&mut chart, &x, &REFERENCE_SLOPES, Some(cfg.flat_tol))?;
            let k = names.len() as f64;
            for (i, name) in names.iter().enumerate() {
                let off = (i as f64 - (k - 1.0) / 2.0) * 0.08;
                let mut pts: Vec<&FitRow> = rows
                    .iter()
                    .copied()
                    .filter(|r| &r.key.series == name)
                    .collect();
                pts.sort_by_key(|r| r.key.step);
                draw_series(&mut chart, &pts, off, series_style(cfg, name))?;
            }
        }
        draw_keys(&legend, &keys(cfg, &names, &all))?;
        root.present().map_err(plot_err)?;
        Ok(true)
    }
}

/// The series among `rows`, in the study's order.
fn series_in(cfg: &StudyConfig, rows: &[&FitRow]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        if !names.contains(&r.key.series) {
            names.push(r.key.series.clone());
        }
    }
    series_names_in(cfg, &names)
}

/// The plotted range: the slopes, intervals and predictions, and at least [−0.6, 0.6], with a margin of 0.1.
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

/// One series of a panel, shifted by `off` steps so that series do not hide each other: its line, its 95%
/// Student-t interval as a bar where the fit has one and a hollow marker where it has none, its prediction as a cross.
fn draw_series<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
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
    let bars = with
        .iter()
        .filter(|r| r.fit.lo.is_finite() && r.fit.hi.is_finite())
        .map(|r| ErrorBar::new_vertical(at(r), r.fit.lo, r.fit.slope, r.fit.hi, c.filled(), 6));
    chart.draw_series(bars).map_err(plot_err)?;
    let hollow = without
        .iter()
        .map(|r| Circle::new((at(r), r.fit.slope), 4, c.stroke_width(2)));
    chart.draw_series(hollow).map_err(plot_err)?;
    // A prediction whose regime the study does not reach (`not testable here`) is drawn faded.
    let faded = faded(c);
    let predicted = pts.iter().filter_map(|r| {
        let colour = if r.regime_reached() { c } else { faded };
        r.predicted
            .filter(|p| p.is_finite())
            .map(|p| Cross::new((at(r), p), 6, colour.stroke_width(2)))
    });
    chart.draw_series(predicted).map_err(plot_err)?;
    Ok(())
}

/// `c` two thirds of the way to white: the mark of a prediction the study does not test.
fn faded(c: RGBColor) -> RGBColor {
    let f = |v: u8| ((v as u16 + 2 * 255) / 3) as u8;
    RGBColor(f(c.0), f(c.1), f(c.2))
}

/// The legend: the series, what the marks mean (only those drawn), the references.
fn keys(cfg: &StudyConfig, names: &[String], rows: &[&FitRow]) -> Vec<Key> {
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
    if rows
        .iter()
        .any(|r| r.predicted.is_some() && r.regime_reached())
    {
        keys.push(Key::new(Glyph::Cross(grey), "predicted (theory)"));
    }
    if rows
        .iter()
        .any(|r| r.predicted.is_some() && !r.regime_reached())
    {
        keys.push(Key::new(
            Glyph::Cross(faded(grey)),
            "predicted, regime not reached",
        ));
    }
    keys.extend(reference_keys(&REFERENCE_SLOPES, Some(cfg.flat_tol)));
    keys
}
