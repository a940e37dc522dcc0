//! The loss figure of a sweep: training and held-out loss of every series and width against step.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis};
use super::frame::{Frame, HEAD};
use super::key::{draw_keys, Glyph, Key};
use super::style::{arm_colour, draw_line, width_shade, Dash, LineStyle};
use super::{by_arm, geo_mean, plot_err, series_names};
use crate::error::Result;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::Grouped;

/// Losses above this multiple of the largest initial loss (diverging runs) are drawn on the top edge.
const TOP: f64 = 3.0;

/// The series with a recorded loss, a row per arm (in the study's order), a column per rate exponent.
fn grid(cfg: &StudyConfig, grouped: &Grouped) -> Vec<Vec<String>> {
    let has_loss = |s: &str| {
        grouped
            .keys()
            .any(|k| k.series == s && k.layer == "model" && k.quantity == Quantity::Loss)
    };
    let names = series_names(cfg, grouped);
    by_arm(cfg, names.into_iter().filter(|s| has_loss(s)).collect())
}

/// The layout: 430 × 300 pixels per panel, the legend in a 200-pixel strip.
pub(super) fn frame(cfg: &StudyConfig, grouped: &Grouped) -> Frame {
    let (cols, rows) = grid_size(cfg, grouped);
    Frame::new((430 * cols + 200, 300 * rows + HEAD), 200)
}

/// (columns, rows) of the loss figure's panels, at least (1, 1).
fn grid_size(cfg: &StudyConfig, grouped: &Grouped) -> (u32, u32) {
    let g = grid(cfg, grouped);
    let cols = g.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    (cols as u32, g.len().max(1) as u32)
}

/// `quantity` (at layer `model`) of `series` at width index `wi` against step: geometric mean over seeds, capped at
/// `top`, in plotted units (step, log₂ loss).
fn curve(
    grouped: &Grouped,
    series: &str,
    quantity: Quantity,
    wi: usize,
    top: f64,
) -> Vec<(f64, f64)> {
    grouped
        .iter()
        .filter(|(k, _)| k.series == series && k.layer == "model" && k.quantity == quantity)
        .filter_map(|(k, v)| {
            let g = geo_mean(v.get(wi)?);
            (g.is_finite() && g > 0.0).then(|| (k.step as f64, g.min(top).log2()))
        })
        .collect()
}

/// The loss axis shared by every panel, and the cap above which losses are drawn on its top edge.
fn loss_axis(grouped: &Grouped) -> Option<(Axis, f64)> {
    let losses = grouped.iter().filter(|(k, _)| {
        k.layer == "model" && matches!(k.quantity, Quantity::Loss | Quantity::TestLoss)
    });
    let means: Vec<(u64, f64)> = losses
        .flat_map(|(k, v)| v.iter().map(move |row| (k.step, geo_mean(row))))
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .collect();
    let initial = means
        .iter()
        .filter(|p| p.0 == 0)
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let top = if initial.is_finite() {
        TOP * initial
    } else {
        f64::INFINITY
    };
    let axis = Axis::log_values(means.iter().map(|p| p.1.min(top)).collect::<Vec<_>>())?;
    Some((axis, top))
}

/// Training (solid) and held-out (dashed) loss against step: a panel per series (a row per arm, a column per rate
/// exponent), every panel on one shared log axis, a line per width in the arm's colour from light (narrow) to dark
/// (wide), geometric mean over seeds; losses above 3× the largest initial loss on the top edge. Returns false when
/// there is nothing to draw.
pub(super) fn loss<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let grid = grid(cfg, grouped);
    let Some((y, top)) = loss_axis(grouped) else {
        return Ok(false);
    };
    if grid.is_empty() {
        return Ok(false);
    }
    let x = Axis::steps(cfg.steps);
    let held_out = cfg.selection().quantity(Quantity::TestLoss);
    let subtitle = match held_out {
        true => "loss (solid) and test_loss (dashed), geometric mean over seeds; colour: width, light (narrow) to dark (wide); one shared axis; above 3× the initial loss: top edge",
        false => "loss (the held-out loss is not probed), geometric mean over seeds; colour: width, light (narrow) to dark (wide); one shared axis; above 3× the initial loss: top edge",
    };
    let title = match held_out {
        true => "Training and held-out loss against step",
        false => "Training loss against step",
    };
    let (body, legend) = frame.split(&root, title, subtitle)?;
    let (cols, rows) = grid_size(cfg, grouped);
    let panels = body.split_evenly((rows as usize, cols as usize));
    for (r, row) in grid.iter().enumerate() {
        for (c, series) in row.iter().enumerate() {
            let area = &panels[r * cols as usize + c];
            let mut chart = panel(area, series, (&x, "step t"), (&y, "loss"))?;
            let k = cfg.widths.len();
            for wi in 0..k {
                let style = LineStyle::solid(width_shade(arm_colour(cfg, series), wi, k), 2);
                draw_line(
                    &mut chart,
                    curve(grouped, series, Quantity::Loss, wi, top),
                    style,
                )?;
                let held_out = curve(grouped, series, Quantity::TestLoss, wi, top);
                draw_line(&mut chart, held_out, style.dashed(Dash::Dashed))?;
            }
        }
    }
    draw_keys(&legend, &loss_keys(cfg, held_out))?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// The loss figure's legend: what solid and dashed mean (dashed only when the held-out loss is probed), and the
/// shade of each width.
fn loss_keys(cfg: &StudyConfig, held_out: bool) -> Vec<Key> {
    let black = LineStyle::solid(RGBColor(40, 40, 40), 2);
    let mut keys = vec![Key::new(Glyph::Line(black), "training loss")];
    if held_out {
        keys.push(Key::new(
            Glyph::Line(black.dashed(Dash::Dashed)),
            "held-out loss",
        ));
    }
    keys.extend([
        Key::new(Glyph::Heading, ""),
        Key::new(Glyph::Heading, "width (in the arm's colour)"),
    ]);
    let k = cfg.widths.len();
    for (wi, w) in cfg.widths.iter().enumerate() {
        let shade = width_shade(RGBColor(90, 90, 90), wi, k);
        keys.push(Key::new(
            Glyph::Line(LineStyle::solid(shade, 2)),
            format!("n = {w}"),
        ));
    }
    keys
}
