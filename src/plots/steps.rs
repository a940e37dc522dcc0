//! The nanoGPT-μP layout of a sweep: every quantity of every series against width, a line per recorded step.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{panel, Axis};
use super::frame::{Frame, HEAD};
use super::key::colour_bar;
use super::style::{draw_line, step_colour, LineStyle};
use super::{geo_mean, plot_err, series_names};
use crate::error::Result;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::Grouped;

/// The layout: 270 pixels per series row, the colour bar in a 90-pixel strip.
pub(super) fn frame(cfg: &StudyConfig, grouped: &Grouped) -> Frame {
    let rows = series_names(cfg, grouped).len().max(1) as u32;
    Frame::new((1320, 270 * rows + HEAD), 90)
}

/// A row per series and a column per quantity at `layer`, each panel the quantity against width on log–log axes
/// (geometric mean over seeds) with a line per recorded step coloured from blue (early) to red (late), and a colour
/// bar at the right with a tick at every recorded step. Returns false when there is nothing to draw.
pub(super) fn by_series<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    layer: &str,
    quantities: &[Quantity],
    frame: &Frame,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let names = series_names(cfg, grouped);
    let present: Vec<Quantity> = quantities
        .iter()
        .copied()
        .filter(|q| grouped.keys().any(|k| k.layer == layer && k.quantity == *q))
        .collect();
    if names.is_empty() || present.is_empty() {
        return Ok(false);
    }
    let mut steps: Vec<u64> = grouped
        .keys()
        .filter(|k| k.layer == layer && present.contains(&k.quantity))
        .map(|k| k.step)
        .collect();
    steps.sort();
    steps.dedup();
    let last = steps.last().copied().unwrap_or(1).max(1);
    let subtitle = format!(
        "{} at {layer}; geometric mean over seeds; a row per series, a line per recorded step (colour bar: step t)",
        present.iter().map(|q| q.to_string()).collect::<Vec<_>>().join(", ")
    );
    let (body, bar) = frame.split(
        &root,
        "Each quantity against width, step by step",
        &subtitle,
    )?;
    let panels = body.split_evenly((names.len(), present.len()));
    for (r, series) in names.iter().enumerate() {
        for (c, &q) in present.iter().enumerate() {
            steps_panel(
                cfg,
                grouped,
                (series, layer, q),
                last,
                &panels[r * present.len() + c],
            )?;
        }
    }
    let ticks: Vec<(f64, String)> = steps
        .iter()
        .map(|&t| (t as f64 / last as f64, t.to_string()))
        .collect();
    colour_bar(&bar, "step t", &ticks, step_colour)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// One panel: `quantity` of `series` at `layer` against width, a line per step coloured by step / `last`.
fn steps_panel<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    (series, layer, quantity): (&str, &str, Quantity),
    last: u64,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let lines: Vec<(u64, Vec<(f64, f64)>)> = grouped
        .iter()
        .filter(|(k, _)| k.series == series && k.layer == layer && k.quantity == quantity)
        .map(|(k, v)| {
            let pts = cfg
                .widths
                .iter()
                .zip(v)
                .map(|(&w, row)| (w as f64, geo_mean(row)))
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .map(|(w, g)| (w.log2(), g.log2()))
                .collect();
            (k.step, pts)
        })
        .collect();
    let values = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| 2f64.powf(q.1)));
    let Some(y) = Axis::log_values(values.collect::<Vec<_>>()) else {
        return Ok(());
    };
    let x = Axis::widths(&cfg.widths);
    let caption = format!("{series} · {quantity}");
    let mut chart = panel(area, &caption, (&x, "width n"), (&y, &quantity.to_string()))?;
    for (t, pts) in lines {
        let style = LineStyle::solid(step_colour(t as f64 / last as f64), 1);
        draw_line(&mut chart, pts, style)?;
    }
    Ok(())
}
