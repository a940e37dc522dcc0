//! Figures of a sweep, drawn with plotters into PNG and SVG (an embedded DejaVu font: no system font needed).
//!
//! Every figure follows the same conventions ([`axes`], [`style`], [`key`], [`refs`]): widths on log axes labelled
//! with the widths, log value axes labelled with values, legends in a margin beside the data, colour = arm and dash =
//! rate exponent c, and grey references for the exponents 0 and −½ with the flat band ±τ shaded.
//!
//! - `coord_<quantity>.{png,svg}` ([`sweep::coord`]): the μP coordinate check, a panel per recorded step (1, 2, 4, 8
//!   and the last), the quantity at the adapted layer against width, a line per series (geometric mean over seeds)
//!   with a band from the smallest to the largest seed, and reference slopes 0 and −½ through the first series.
//! - `slopes_<quantity>.{png,svg}` ([`sweep::slopes`]): the fitted width exponent against step, a line per series,
//!   its Student-t interval as a bar where the fit has one (a hollow marker where it has none), the theory's
//!   prediction as a cross, and levels 0 and −½ over the shaded flat band.
//! - `steps_by_series.{png,svg}` ([`steps::by_series`]): the nanoGPT-μP layout, a row per series and a column per
//!   quantity against width, a line per recorded step coloured by a step colour bar.
//! - `loss.{png,svg}` ([`loss::loss`]): training (solid) and held-out (dashed) loss against step, a panel per series
//!   on one shared log axis, a line per width (light: narrow, dark: wide).
//!
//! Limit studies draw their own figures ([`limit`]), and so do learning-rate studies ([`lr`]).

mod axes;
mod key;
pub mod limit;
mod loss;
pub mod lr;
mod refs;
mod steps;
mod style;
mod sweep;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::{FitRow, Grouped};

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

/// Draws the legend box of `chart` at `position` (inside the data; the learning-rate figures' style).
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(plot_err)
}

/// The legend glyph of a line: a short stroke in `style`.
fn line_key(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style)
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

/// Fills `root` white, writes `title` (plain words) and `subtitle` (smaller, grey: names and details) across its top,
/// and returns the area below.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>> {
    root.fill(&WHITE).map_err(plot_err)?;
    let (w, _) = root.dim_in_pixel();
    let (head, body) = root.split_vertically(if subtitle.is_empty() { 38 } else { 58 });
    let top = Pos::new(HPos::Center, VPos::Top);
    let big = TextStyle::from(("sans-serif", 20).into_font()).pos(top);
    head.draw_text(title, &big, (w as i32 / 2, 8))
        .map_err(plot_err)?;
    let small = TextStyle::from(("sans-serif", 13).into_font())
        .color(&RGBColor(90, 90, 90))
        .pos(top);
    head.draw_text(subtitle, &small, (w as i32 / 2, 34))
        .map_err(plot_err)?;
    Ok(body)
}

/// Splits `area` into the panels and a strip of `width` pixels on the right for the legend.
fn split_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    width: u32,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (w, _) = area.dim_in_pixel();
    area.split_horizontally(w.saturating_sub(width))
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
        q => q.to_string(),
    }
}

/// Draws `$draw` (an expression of `$root`, a drawing area, evaluating to `Result<bool>`: whether there was anything
/// to draw) into `$dir/$stem.png` and `$dir/$stem.svg`. Each file is rendered under a temporary name and renamed into
/// place, so an interrupted run never leaves a half-written figure. Evaluates to `Result<usize>`, the files written.
macro_rules! png_and_svg {
    ($dir:expr, $stem:expr, $size:expr, |$root:ident| $draw:expr) => {
        (|| -> Result<usize> {
            let (dir, stem): (&Path, &str) = (&$dir, &$stem);
            let tmp_png = dir.join(format!("{stem}.tmp.png"));
            let drawn = {
                let $root = BitMapBackend::new(&tmp_png, $size).into_drawing_area();
                $draw?
            };
            if !drawn {
                let _ = std::fs::remove_file(&tmp_png);
                return Ok(0);
            }
            let tmp_svg = dir.join(format!("{stem}.tmp.svg"));
            {
                let $root = SVGBackend::new(&tmp_svg, $size).into_drawing_area();
                $draw?;
            }
            for (tmp, ext) in [(tmp_png, "png"), (tmp_svg, "svg")] {
                let path = dir.join(format!("{stem}.{ext}"));
                std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            }
            Ok(2)
        })()
    };
}
pub(crate) use png_and_svg;

/// Draws every figure of a sweep into `dir` (created if missing) and returns how many files were written.
pub fn draw_sweep(
    cfg: &StudyConfig,
    grouped: &Grouped,
    fits: &[FitRow],
    layer: &str,
    dir: &Path,
) -> Result<usize> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut n = 0;
    for quantity in [
        Quantity::DzRms,
        Quantity::UpdateOutRms,
        Quantity::BottleneckRms,
        Quantity::DwOp,
    ] {
        n += png_and_svg!(dir, format!("coord_{quantity}"), (1650, 470), |root| {
            sweep::coord(cfg, grouped, layer, quantity, root)
        })?;
        n += png_and_svg!(dir, format!("slopes_{quantity}"), (1100, 560), |root| {
            sweep::slopes(cfg, fits, layer, quantity, root)
        })?;
    }
    let quantities = [
        Quantity::DzRms,
        Quantity::UpdateOutRms,
        Quantity::BottleneckRms,
    ];
    let rows = series_names(cfg, grouped).len() as u32;
    n += png_and_svg!(dir, "steps_by_series", (1320, 270 * rows + 60), |root| {
        steps::by_series(cfg, grouped, layer, &quantities, root)
    })?;
    let (cols, rows) = loss::grid_size(cfg, grouped);
    n += png_and_svg!(dir, "loss", (430 * cols + 200, 300 * rows + 60), |root| {
        loss::loss(cfg, grouped, root)
    })?;
    Ok(n)
}
