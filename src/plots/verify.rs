//! Figures of `singlora verify`: every study's own figures in `OUT/<study>/figures/` (as its command draws them), and
//! two of its own:
//! - `synthetic/synthetic.{png,svg}`: final loss relative to the base layer's, per target symmetry and adapter (each
//!   seed a dot, the median a bar), on a log axis;
//! - `invariance/invariance.{png,svg}`: the relative difference of ΔW between the two trajectories of each pair
//!   against the step, on a log axis, with the round-off and real-difference thresholds.

use std::path::Path;

use plotters::prelude::*;

use super::key::{draw_keys, Glyph, Key};
use super::{colour, plot_err, png_and_svg, register_font, Frame};
use crate::error::{Error, Result};
use crate::studies::lr::median;
use crate::studies::synthetic::SyntheticResult;
use crate::studies::verify::invariance::{pairs, InvarianceMeasurements, DIFFERENT, SAME};
use crate::studies::verify::plan::{Measured, INVARIANCE, SYNTHETIC};

/// Draws every figure of a verification into `out` and returns how many files were written.
pub fn draw_verify(m: &Measured, out: &Path) -> Result<usize> {
    register_font();
    let mut n = 0;
    for s in &m.sweeps {
        let layer = s.cfg.summary_layer();
        let dir = out.join(s.plan.folder).join("figures");
        n += super::draw_sweep(&s.cfg, &s.grouped, &s.fits, &layer, &dir)?.len();
    }
    if let Some(lr) = &m.lr {
        n += super::lr::draw_lr(
            &lr.cfg,
            &lr.results,
            &out.join(lr.plan.folder).join("figures"),
        )?
        .len();
    }
    if let Some(fits) = &m.synthetic {
        let dir = out.join(SYNTHETIC);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let frame = Frame::new((1000, 480), KEY);
        n += png_and_svg!(dir, "synthetic", frame, |root| synthetic(fits, root))?.map_or(0, |_| 1);
    }
    if let Some(inv) = &m.invariance {
        let dir = out.join(INVARIANCE);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let frame = Frame::new((1000, 480), KEY);
        n += png_and_svg!(dir, "invariance", frame, |root| invariance(inv, root))?.map_or(0, |_| 1);
    }
    Ok(n)
}

/// Width of the key strip beside the chart.
const KEY: u32 = 200;

/// The chart's area and the key strip right of it (keys never over the data).
fn split<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> (
    DrawingArea<DB, plotters::coord::Shift>,
    DrawingArea<DB, plotters::coord::Shift>,
) {
    let (w, _) = root.dim_in_pixel();
    root.split_horizontally(w.saturating_sub(KEY))
}

/// log₁₀ of a loss ratio, floored at 10⁻¹⁶ so round-off zeros stay on the axis.
fn log10_floor(v: f64) -> f64 {
    v.max(1e-16).log10()
}

fn synthetic<DB: DrawingBackend>(
    fits: &[SyntheticResult],
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> Result<bool> {
    let mut targets: Vec<&str> = fits.iter().map(|f| f.target.as_str()).collect();
    targets.dedup();
    let mut arms: Vec<(String, usize)> = fits.iter().map(|f| (f.method.clone(), f.rank)).collect();
    arms.sort();
    arms.dedup();
    if targets.is_empty() {
        return Ok(false);
    }
    root.fill(&WHITE).map_err(plot_err)?;
    let (area, strip) = split(&root);
    let mut keys = Vec::new();
    let k = targets.len() as f64;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "synthetic fits: final loss / base layer's loss (dots: seeds, bars: median)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5..k - 0.5, -16.5..0.8)
        .map_err(plot_err)?;
    let names = targets.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(targets.len())
        .x_label_formatter(&|x| {
            names
                .get(x.round() as usize)
                .filter(|_| (x - x.round()).abs() < 0.01)
                .map_or(String::new(), |t| format!("{t} target"))
        })
        .y_desc("log₁₀ final / base loss")
        .draw()
        .map_err(plot_err)?;
    for (i, (method, rank)) in arms.iter().enumerate() {
        let slot = (i as f64 - (arms.len() as f64 - 1.0) / 2.0) * 0.22;
        let arm = SyntheticArm {
            method,
            rank: *rank,
            colour: colour(i),
            offset: slot,
        };
        keys.push(arm.draw(&mut chart, fits, &targets)?);
    }
    draw_keys(&strip, &keys)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// One adapter's points in the synthetic figure: its colour and its horizontal offset from each target's position.
struct SyntheticArm<'a> {
    method: &'a str,
    rank: usize,
    colour: RGBColor,
    offset: f64,
}

impl SyntheticArm<'_> {
    /// Draws the arm's seeds (dots) and median (a bar) at every target; returns its key.
    fn draw<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<
            '_,
            DB,
            Cartesian2d<
                plotters::coord::types::RangedCoordf64,
                plotters::coord::types::RangedCoordf64,
            >,
        >,
        fits: &[SyntheticResult],
        targets: &[&str],
    ) -> Result<Key> {
        let c = self.colour;
        for (j, t) in targets.iter().enumerate() {
            let v: Vec<f64> = fits
                .iter()
                .filter(|f| &f.target == t && f.method == self.method && f.rank == self.rank)
                .map(|f| log10_floor(f.ratio_to_base()))
                .collect();
            let x = j as f64 + self.offset;
            chart
                .draw_series(v.iter().map(|&y| Circle::new((x, y), 4, c.filled())))
                .map_err(plot_err)?;
            let med = median(&v);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x - 0.09, med), (x + 0.09, med)],
                    c.stroke_width(3),
                )))
                .map_err(plot_err)?;
        }
        Ok(Key::new(
            Glyph::Dot(c),
            format!("{} r={}", self.method, self.rank),
        ))
    }
}

fn invariance<DB: DrawingBackend>(
    m: &InvarianceMeasurements,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> Result<bool> {
    let steps = m.sgd_rotation.len() as f64;
    if steps == 0.0 {
        return Ok(false);
    }
    root.fill(&WHITE).map_err(plot_err)?;
    let (area, strip) = split(&root);
    let mut keys = Vec::new();
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "two trajectories of the same ΔW: relative difference per step",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5..steps + 0.5, -17.0..1.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc("log₁₀ ‖ΔW − ΔW′‖ / ‖ΔW‖")
        .draw()
        .map_err(plot_err)?;
    for (y, what, shade) in [
        (SAME, "round-off bound", 0.3),
        (DIFFERENT, "real difference", 0.8),
    ] {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.5, y.log10()), (steps + 0.5, y.log10())],
                6,
                4,
                BLACK.mix(shade).into(),
            ))
            .map_err(plot_err)?;
        keys.push(Key::new(
            Glyph::Band(BLACK.mix(shade)),
            format!("{what} {y:e}"),
        ));
    }
    for (i, (name, v)) in pairs(m).iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                v.iter()
                    .enumerate()
                    .map(|(t, &d)| ((t + 1) as f64, log10_floor(d))),
                c.stroke_width(2),
            ))
            .map_err(plot_err)?;
        keys.push(Key::new(Glyph::Dot(c), *name));
    }
    draw_keys(&strip, &keys)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}
