//! Figures of a learning-rate study:
//! - `lr_loss.{png,svg}`: final loss against learning rate (the μTransfer plot), a panel per series, a line per width
//!   (light: narrow, dark: wide; median over seeds), each width's best rate marked;
//! - `lr_best.{png,svg}`: the best rate η* against width on log axes, a line per series with every seed's η*;
//! - `lr_plane_n<width>.{png,svg}`: the LoRA+ plane, final loss over (η_A, η_B), near-best cells outlined.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::Axis;
use super::{colour, draw_legend, line_key, plot_err, png_and_svg, register_font};
use crate::error::{Error, Result};
use crate::studies::config::StudyConfig;
use crate::studies::lr::LrResults;

/// Draws every figure of a learning-rate study into `dir` and returns how many files were written.
pub fn draw_lr(cfg: &StudyConfig, r: &LrResults, dir: &Path) -> Result<usize> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let series: Vec<String> = cfg.series().into_iter().map(|s| s.0).collect();
    let mut n = png_and_svg!(
        dir,
        "lr_loss",
        (460 * series.len().max(1) as u32, 460),
        |root| { loss_panels(cfg, r, &series, root) }
    )?;
    n += png_and_svg!(dir, "lr_best", (760, 500), |root| best_vs_width(
        cfg, r, &series, root
    ))?;
    let mut widths: Vec<usize> = r.plane.iter().map(|c| c.width).collect();
    widths.dedup();
    for w in widths {
        n += png_and_svg!(dir, format!("lr_plane_n{w}"), (640, 560), |root| plane(
            r, w, root
        ))?;
    }
    Ok(n)
}

/// The shade of width index `i` of `k`: light (narrow) to dark (wide) in `base`.
fn shade(base: RGBColor, i: usize, k: usize) -> RGBColor {
    let f = 0.25 + 0.75 * i as f64 / (k.max(2) - 1) as f64;
    let mix = |c: u8| (255.0 - (255.0 - c as f64) * f) as u8;
    RGBColor(mix(base.0), mix(base.1), mix(base.2))
}

fn loss_panels<DB: DrawingBackend>(
    cfg: &StudyConfig,
    r: &LrResults,
    series: &[String],
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    // The basin is what matters: the axis stops at 3× the largest initial loss; losses above it (diverging rates) are
    // drawn on the top edge.
    let top = r
        .lines
        .iter()
        .map(|l| l.initial)
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(f64::NEG_INFINITY, f64::max)
        * 3.0;
    let logs: Vec<f64> = r
        .lines
        .iter()
        .flat_map(|l| l.train.iter())
        .filter(|v| v.is_finite() && **v > 0.0 && **v <= top)
        .map(|v| v.log2())
        .collect();
    if logs.is_empty() || r.rates.is_empty() || !top.is_finite() {
        return Ok(false);
    }
    let ylo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let yhi = top.log2();
    let x = Axis::log_between(
        r.rates[0].log2() - 0.3,
        r.rates[r.rates.len() - 1].log2() + 0.3,
    );
    let y = Axis::log_between(ylo - 0.3, yhi + 0.05);
    root.fill(&WHITE).map_err(plot_err)?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            "final training loss vs learning rate (median over seeds; ● best rate; above 3× the initial loss: top edge)",
            ("sans-serif", 20),
        )
        .map_err(plot_err)?;
    for (i, (panel, name)) in body
        .split_evenly((1, series.len()))
        .iter()
        .zip(series)
        .enumerate()
    {
        let mut chart = ChartBuilder::on(panel)
            .caption(name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(x.spec(), y.spec())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("learning rate η")
            .y_desc("final loss")
            .x_label_formatter(&|v| x.label(v))
            .y_label_formatter(&|v| y.label(v))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_err)?;
        let lines: Vec<_> = r.lines.iter().filter(|l| &l.series == name).collect();
        for (wi, l) in lines.iter().enumerate() {
            let c = shade(colour(i), wi, lines.len());
            let pts: Vec<(f64, f64)> = r
                .rates
                .iter()
                .zip(&l.train)
                .filter(|(_, v)| v.is_finite() && **v > 0.0)
                .map(|(x, v)| (x.log2(), v.log2().min(yhi)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(plot_err)?
                .label(format!("n = {}", l.width))
                .legend(line_key(c.stroke_width(2).into()));
            if let Some((eta, _)) = l.best {
                if l.best_loss.is_finite() && l.best_loss > 0.0 {
                    let p = (eta.log2(), l.best_loss.log2());
                    chart
                        .draw_series(std::iter::once(Circle::new(p, 5, c.filled())))
                        .map_err(plot_err)?;
                }
            }
        }
        if cfg.widths.len() > 1 {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
    }
    root.present().map_err(plot_err)?;
    Ok(true)
}

fn best_vs_width<DB: DrawingBackend>(
    cfg: &StudyConfig,
    r: &LrResults,
    series: &[String],
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let etas: Vec<f64> = r
        .lines
        .iter()
        .flat_map(|l| l.seed_best.iter().copied().chain(l.best.map(|b| b.0)))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if etas.is_empty() {
        return Ok(false);
    }
    let (ylo, yhi) = etas
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v.log2()), b.max(v.log2()))
        });
    let x = Axis::widths(&cfg.widths);
    let y = Axis::log_between(ylo - 0.5, yhi + 0.5);
    let (xlo, xhi) = (x.lo, x.hi);
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "best learning rate η* vs width (solid: median-loss η*, dots: each seed's η*, dashed: fitted n^slope)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x.spec(), y.spec())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("width n")
        .y_desc("η*")
        .x_label_formatter(&|v| x.label(v))
        .y_label_formatter(&|v| y.label(v))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(plot_err)?;
    for (i, name) in series.iter().enumerate() {
        let c = colour(i);
        let lines: Vec<_> = r.lines.iter().filter(|l| &l.series == name).collect();
        let pts: Vec<(f64, f64)> = lines
            .iter()
            .filter_map(|l| l.best.map(|b| ((l.width as f64).log2(), b.0.log2())))
            .collect();
        let drift = r.drifts.iter().find(|d| &d.series == name);
        let label = match drift.and_then(|d| d.fit.as_ref()) {
            Some(f) => format!(
                "{name}: η* ∝ n^{:+.2} [{:+.2}, {:+.2}]",
                f.slope, f.lo, f.hi
            ),
            None => name.clone(),
        };
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(line_key(c.stroke_width(2).into()));
        // The fitted line: slope p through the geometric mean of the per-seed η* (the OLS line's centroid).
        if let Some(f) = drift.and_then(|d| d.fit.as_ref()) {
            let logs: Vec<(f64, f64)> = lines
                .iter()
                .flat_map(|l| {
                    let x = (l.width as f64).log2();
                    l.seed_best
                        .iter()
                        .filter(|v| v.is_finite() && **v > 0.0)
                        .map(move |v| (x, v.log2()))
                })
                .collect();
            if !logs.is_empty() {
                let k = logs.len() as f64;
                let (mx, my) = logs
                    .iter()
                    .fold((0.0, 0.0), |(a, b), p| (a + p.0 / k, b + p.1 / k));
                let ends = [xlo + 0.2, xhi - 0.2].map(|x| (x, my + f.slope * (x - mx)));
                chart
                    .draw_series(DashedLineSeries::new(
                        ends,
                        6,
                        4,
                        c.mix(0.8).stroke_width(1),
                    ))
                    .map_err(plot_err)?;
            }
        }
        let dots = lines.iter().flat_map(|l| {
            l.seed_best
                .iter()
                .filter(|v| v.is_finite() && **v > 0.0)
                .map(move |v| {
                    Circle::new(((l.width as f64).log2(), v.log2()), 3, c.mix(0.6).filled())
                })
        });
        chart.draw_series(dots).map_err(plot_err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

fn plane<DB: DrawingBackend>(
    r: &LrResults,
    width: usize,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let cells: Vec<_> = r.plane.iter().filter(|c| c.width == width).collect();
    let finite: Vec<f64> = cells
        .iter()
        .filter(|c| c.loss.is_finite() && c.loss > 0.0)
        .map(|c| c.loss.log10())
        .collect();
    if finite.is_empty() {
        return Ok(false);
    }
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let axis = |f: &dyn Fn(&&crate::studies::lr::PlaneCell) -> f64| {
        let v: Vec<f64> = cells.iter().map(f).map(f64::log2).collect();
        let (a, b) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        (a - 0.5, b + 0.5)
    };
    let ((xlo, xhi), (ylo, yhi)) = (axis(&|c| c.eta_a), axis(&|c| c.eta_b));
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "LoRA+ plane at n = {width}: final loss (dark: low; □ near-best, grey: diverged)"
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("η_A")
        .y_desc("η_B")
        .x_label_formatter(&|x| format!("{:.0e}", 2f64.powf(*x)))
        .y_label_formatter(&|y| format!("{:.0e}", 2f64.powf(*y)))
        .disable_mesh()
        .draw()
        .map_err(plot_err)?;
    let span = (hi - lo).max(1e-12);
    for c in &cells {
        let (x, y) = (c.eta_a.log2(), c.eta_b.log2());
        let fill = if c.loss.is_finite() && c.loss > 0.0 {
            let f = (c.loss.log10() - lo) / span;
            RGBColor(
                (30.0 + 225.0 * f) as u8,
                (60.0 + 160.0 * f) as u8,
                (120.0 + 60.0 * f) as u8,
            )
        } else {
            RGBColor(200, 200, 200)
        };
        let rect = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
        chart
            .draw_series(std::iter::once(Rectangle::new(rect, fill.filled())))
            .map_err(plot_err)?;
        if c.near_best {
            let inner = [(x - 0.4, y - 0.4), (x + 0.4, y + 0.4)];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    inner,
                    WHITE.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
    }
    root.present().map_err(plot_err)?;
    Ok(true)
}
