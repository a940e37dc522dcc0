//! Figures of the studies, drawn with plotters into PNG and SVG (an embedded DejaVu font: no system font needed).
//!
//! Every figure follows the same conventions (`axes`, `style`, `key`, `refs`, [`frame`]): a plain-words title
//! over a grey line of names and details; widths on log axes labelled with the widths themselves, log value axes
//! labelled with values; the legend (or colour bar) in a strip beside the panels, never over the data; colour = arm
//! and dash = rate exponent c wherever lines are series; grey references for the exponents 0 and −½ with the flat band
//! ±τ shaded on every coordinate check and every figure of fitted exponents.
//!
//! A sweep draws what `plan` lists. An MLP study:
//! - `coord_<quantity>` (`coord`): the μP coordinate check, a panel per step (1, 2, 4, 8 and the last), the quantity
//!   at the summary layer against width, a line per series (geometric mean over seeds) with a band from the smallest
//!   to the largest seed, and reference slopes 0 and −½ through the first series; for `dz_rms`, `update_out_rms`,
//!   `bottleneck_rms` and `dw_op`.
//! - `slopes_<quantity>` (`slopes`): the fitted width exponent against step, a line per series, its Student-t
//!   interval as a bar where the fit has one (a hollow marker where it has none), the theory's prediction as a cross,
//!   levels 0 and −½ over the shaded flat band; for the same four quantities.
//! - `steps_by_series` (`steps`): the nanoGPT-μP layout, a row per series and a column per quantity against width, a
//!   line per recorded step coloured by a step colour bar.
//! - `loss` (`loss`): training (solid) and held-out (dashed) loss against step, a panel per series on one shared
//!   log axis, a line per width (light: narrow, dark: wide).
//!
//! A transformer study (summary layer `block.K.<map>`):
//! - `coord_maps`: `dz_rms` of every adapted map of block K against width, a row per series, a panel per step, a line
//!   per map (q, k, v, o, up, down; colour = map);
//! - `coord_blocks`: the block's activations (attention logits, heads' outputs, attention output, residual after
//!   attention, MLP output, residual after the block) the same way, step 0 (the frozen base) included;
//! - `slopes_maps`, `slopes_blocks`: their fitted exponents, a panel per map or activation, a line per series;
//! - `loss`.
//!
//! Limit studies draw their own figures ([`limit`]), and so do learning-rate studies ([`lr`]).

mod axes;
mod coord;
pub mod frame;
mod key;
pub mod limit;
mod loss;
pub mod lr;
mod plan;
mod refs;
mod slopes;
mod steps;
mod style;
pub mod verify;

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::{FitRow, Grouped};
use axes::take_non_finite;
pub use frame::{Figure, Frame, Rect};
use plan::SweepFigure;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::invalid("figure", e, "a drawable figure")
}

/// The colour of arm (or series) `i`.
fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// The series of a study present in `grouped`, in the study's order (arm, then exponent); any others after them.
fn series_names(cfg: &StudyConfig, grouped: &Grouped) -> Vec<String> {
    let present: std::collections::BTreeSet<String> =
        grouped.keys().map(|k| k.series.clone()).collect();
    series_names_in(cfg, &present.into_iter().collect::<Vec<_>>())
}

/// `present` in the study's order of series (arm, then exponent); names the study does not have after them.
fn series_names_in(cfg: &StudyConfig, present: &[String]) -> Vec<String> {
    let mut names: Vec<String> = cfg
        .series()
        .into_iter()
        .map(|s| s.0)
        .filter(|s| present.contains(s))
        .collect();
    for s in present {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    names
}

/// `series` laid out as panels, in the order given: a row per arm, its series (one per rate exponent) across; with
/// one series per arm, all of them in one row.
fn by_arm(cfg: &StudyConfig, series: Vec<String>) -> Vec<Vec<String>> {
    let arm_of = |s: &str| match cfg.series().into_iter().find(|x| x.0 == s) {
        Some((_, arm, _)) => arm.name.clone(),
        None => s.split_once("@c=").map(|p| p.0).unwrap_or(s).to_string(),
    };
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for s in series {
        let arm = arm_of(&s);
        match rows.iter_mut().find(|r| r.0 == arm) {
            Some(r) => r.1.push(s),
            None => rows.push((arm, vec![s])),
        }
    }
    if rows.iter().all(|r| r.1.len() == 1) {
        return vec![rows.into_iter().flat_map(|r| r.1).collect()];
    }
    rows.into_iter().map(|r| r.1).collect()
}

/// The geometric mean of the usable (finite, positive) values of `row`; NaN if there are none.
fn geo_mean(row: &[f64]) -> f64 {
    let logs: Vec<f64> = row
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.ln())
        .collect();
    if logs.is_empty() {
        f64::NAN
    } else {
        (logs.iter().sum::<f64>() / logs.len() as f64).exp()
    }
}

/// A plain-words name of a quantity, for titles.
fn describe(q: Quantity) -> String {
    match q {
        Quantity::DzRms => "Per-step change of the adapted layer's output (rms)".into(),
        Quantity::DzCumRms => "Change of the adapted layer's output since the start (rms)".into(),
        Quantity::UpdateOutRms => {
            "The adapter's own contribution to the layer's output (rms)".into()
        }
        Quantity::BottleneckRms => "The adapter's rank-r bottleneck (rms)".into(),
        Quantity::DwOp => "Spectral norm of the adapter's weight change".into(),
        Quantity::DwFro => "Frobenius norm of the adapter's weight change".into(),
        Quantity::ActRms => "The adapted layer's output (rms)".into(),
        Quantity::Loss => "Training loss".into(),
        Quantity::TestLoss => "Held-out loss".into(),
        Quantity::AttnLogitsRms => "Attention logits (rms)".into(),
        Quantity::AttnCtxRms => "Heads' outputs before W_O (rms)".into(),
        Quantity::AttnOutRms => "Attention sublayer's output (rms)".into(),
        Quantity::ResidMidRms => "Residual stream after attention (rms)".into(),
        Quantity::MlpOutRms => "MLP sublayer's output (rms)".into(),
        Quantity::ResidOutRms => "Residual stream after the block (rms)".into(),
        q => q.to_string(),
    }
}

/// Draws `$draw` (an expression of `$root`, a drawing area of `$frame`'s size, evaluating to `Result<bool>`: whether
/// there was anything to draw) into `$dir/$stem.png` and `$dir/$stem.svg`. Each file is rendered under a temporary
/// name and renamed into place, so an interrupted run never leaves a half-written figure. Evaluates to
/// `Result<Option<Figure>>`: the figure written, if any, with the non-finite coordinates its drawing met.
macro_rules! png_and_svg {
    ($dir:expr, $stem:expr, $frame:expr, |$root:ident| $draw:expr) => {
        (|| -> $crate::error::Result<Option<$crate::plots::Figure>> {
            let (dir, stem, frame): (&std::path::Path, String, $crate::plots::Frame) =
                (&$dir, $stem.to_string(), $frame);
            let tmp_png = dir.join(format!("{stem}.tmp.png"));
            $crate::plots::take_non_finite();
            let drawn = {
                let $root = BitMapBackend::new(&tmp_png, frame.size()).into_drawing_area();
                $draw?
            };
            if !drawn {
                let _ = std::fs::remove_file(&tmp_png);
                return Ok(None);
            }
            let tmp_svg = dir.join(format!("{stem}.tmp.svg"));
            {
                let $root = SVGBackend::new(&tmp_svg, frame.size()).into_drawing_area();
                $draw?;
            }
            for (tmp, ext) in [(tmp_png, "png"), (tmp_svg, "svg")] {
                let path = dir.join(format!("{stem}.{ext}"));
                std::fs::rename(&tmp, &path).map_err(|e| $crate::error::Error::io(&path, e))?;
            }
            let non_finite = $crate::plots::take_non_finite();
            Ok(Some($crate::plots::Figure {
                stem,
                frame,
                non_finite,
            }))
        })()
    };
}
pub(crate) use png_and_svg;

/// Draws every figure of a sweep (`plan`) into `dir` (created if missing) and returns those written (a figure
/// with nothing to draw is left out).
pub fn draw_sweep(
    cfg: &StudyConfig,
    grouped: &Grouped,
    fits: &[FitRow],
    layer: &str,
    dir: &Path,
) -> Result<Vec<Figure>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    for planned in plan::plan(cfg, grouped, layer) {
        let frame = match &planned.figure {
            SweepFigure::Coord(c) => c.frame(),
            SweepFigure::Slopes(s) => s.frame(),
            SweepFigure::Steps(_) => steps::frame(cfg, grouped),
            SweepFigure::Loss => loss::frame(cfg, grouped),
        };
        let drawn = png_and_svg!(dir, planned.stem, frame, |root| match &planned.figure {
            SweepFigure::Coord(c) => c.draw(cfg, grouped, &frame, root),
            SweepFigure::Slopes(s) => s.draw(cfg, fits, &frame, root),
            SweepFigure::Steps(q) => steps::by_series(cfg, grouped, layer, q, &frame, root),
            SweepFigure::Loss => loss::loss(cfg, grouped, &frame, root),
        })?;
        written.extend(drawn);
    }
    Ok(written)
}

/// The names of `figures`, comma-separated: what a command prints after writing them.
pub fn stems(figures: &[Figure]) -> String {
    figures
        .iter()
        .map(|f| f.stem.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
