//! Figures of a limit study (PNG and SVG).
//!
//! - `limit_<arm>.{png,svg}`: loss, output rms, readout-overlap rms and bottleneck rms against step for the first seed,
//!   one line per finite width (light to dark as n grows) and the computed limit in thick dashed black.
//! - `limit_convergence.{png,svg}`: the distance of each finite run to its limit against width on log₂ axes, a
//!   point per seed, the geometric mean per width joined by a line, the fitted slope and its interval in the legend,
//!   and a grey n^(−1/2) reference.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{colour, draw_legend, line_key, log_range, plot_err, png_and_svg, register_font};
use crate::error::{Error, Result};
use crate::studies::limit::{LimitConfig, LimitResults, Trajectory, EXPECTED_SLOPE};
use crate::studies::store::file_stem;

/// Draws every figure of a limit study into `dir` and returns how many files were written.
pub fn draw_limit(cfg: &LimitConfig, r: &LimitResults, dir: &Path) -> Result<usize> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut n = 0;
    for arm in &cfg.arms {
        n += png_and_svg!(
            dir,
            format!("limit_{}", file_stem(&arm.name)),
            (1600, 420),
            |root| { trajectories(cfg, r, &arm.name, root) }
        )?;
    }
    n += png_and_svg!(dir, "limit_convergence", (800, 560), |root| convergence(
        cfg, r, root
    ))?;
    Ok(n)
}

type Pick = fn(&Trajectory) -> &Vec<f64>;

fn trajectories<DB: DrawingBackend>(
    cfg: &LimitConfig,
    r: &LimitResults,
    arm: &str,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    root.fill(&WHITE).map_err(plot_err)?;
    let seed = cfg.seeds[0];
    let root = root
        .titled(
            &format!("{arm}: finite widths (seed {seed}) and the n → ∞ limit"),
            ("sans-serif", 20),
        )
        .map_err(plot_err)?;
    let panels: [(&str, Pick); 4] = [
        ("training loss", |t| &t.loss),
        ("rms f (outputs)", |t| &t.f_rms),
        ("rms readout overlap", |t| &t.readout_overlap_rms),
        ("rms bottleneck overlap", |t| &t.bottleneck_rms),
    ];
    let limit = &r.limits[&(arm.to_string(), seed)];
    let finite: Vec<(usize, &Trajectory)> = cfg
        .widths
        .iter()
        .map(|&w| (w, &r.finite[&(arm.to_string(), w, seed)]))
        .collect();
    for ((title, pick), area) in panels.iter().zip(root.split_evenly((1, 4))) {
        let all = finite
            .iter()
            .flat_map(|(_, t)| pick(t).iter())
            .chain(pick(limit).iter())
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (lo, hi) = if lo < hi {
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        } else {
            (lo - 1.0, lo + 1.0)
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(*title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..cfg.steps as f64, lo..hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("step t")
            .draw()
            .map_err(plot_err)?;
        let k = finite.len().max(2) - 1;
        for (i, (w, t)) in finite.iter().enumerate() {
            let frac = i as f64 / k as f64;
            let c = RGBColor(
                (250.0 - 200.0 * frac) as u8,
                (180.0 - 120.0 * frac) as u8,
                (120.0 + 100.0 * frac) as u8,
            );
            let pts = pick(t).iter().enumerate().map(|(s, &v)| (s as f64, v));
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(plot_err)?
                .label(format!("n = {w}"))
                .legend(line_key(c.stroke_width(2).into()));
        }
        let pts: Vec<(f64, f64)> = pick(limit)
            .iter()
            .enumerate()
            .map(|(s, &v)| (s as f64, v))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(pts, 7, 4, BLACK.stroke_width(3)))
            .map_err(plot_err)?
            .label("limit n → ∞")
            .legend(line_key(BLACK.stroke_width(3).into()));
        if *title == "training loss" {
            draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
        }
    }
    root.present().map_err(plot_err)?;
    Ok(true)
}

fn convergence<DB: DrawingBackend>(
    cfg: &LimitConfig,
    r: &LimitResults,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    root.fill(&WHITE).map_err(plot_err)?;
    let usable = |v: f64| v.is_finite() && v > 0.0;
    let xs = log_range(cfg.widths.iter().map(|&w| w as f64)).unwrap_or((1.0, 2.0));
    let ys = log_range(
        r.finite
            .values()
            .map(|t| t.max_distance())
            .filter(|&v| usable(v)),
    )
    .unwrap_or((-3.0, 0.0));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "distance of finite widths to the computed limit",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("log2 width n")
        .y_desc("log2 max_t distance")
        .draw()
        .map_err(plot_err)?;
    let mut anchor = None;
    for (i, (arm, conv)) in cfg.arms.iter().zip(&r.convergence).enumerate() {
        let c = colour(i);
        let mut means = Vec::new();
        for &w in &cfg.widths {
            let vals: Vec<f64> = cfg
                .seeds
                .iter()
                .map(|&s| r.finite[&(arm.name.clone(), w, s)].max_distance())
                .filter(|&v| usable(v))
                .collect();
            let x = (w as f64).log2();
            chart
                .draw_series(
                    vals.iter()
                        .map(|v| Circle::new((x, v.log2()), 3, c.filled())),
                )
                .map_err(plot_err)?;
            if !vals.is_empty() {
                means.push((
                    x,
                    vals.iter().map(|v| v.log2()).sum::<f64>() / vals.len() as f64,
                ));
            }
        }
        anchor = anchor.or(means.first().copied());
        let label = match &conv.fit {
            Some(f) => format!(
                "{}: slope {:+.2} [{:+.2}, {:+.2}]",
                arm.name, f.slope, f.lo, f.hi
            ),
            None => format!("{}: no fit", arm.name),
        };
        chart
            .draw_series(LineSeries::new(means, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(line_key(c.stroke_width(2).into()));
    }
    if let Some((x0, y0)) = anchor {
        let grey = RGBColor(120, 120, 120);
        let line = vec![
            (xs.0, y0 + EXPECTED_SLOPE * (xs.0 - x0)),
            (xs.1, y0 + EXPECTED_SLOPE * (xs.1 - x0)),
        ];
        chart
            .draw_series(DashedLineSeries::new(line, 6, 4, grey.stroke_width(1)))
            .map_err(plot_err)?
            .label("reference n^(−1/2)")
            .legend(line_key(grey.stroke_width(1).into()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}
