//! Figures of a sweep, drawn with plotters into PNG and SVG (an embedded DejaVu font: no system font needed).
//!
//! - `coord_<quantity>.{png,svg}`: the μP coordinate-check layout, one panel per recorded step, x = width and
//!   y = the quantity at the adapted layer on log₂ axes, a line per series (geometric mean over seeds) and a band
//!   from the smallest to the largest seed.
//! - `slopes_<quantity>.{png,svg}`: the fitted width exponent against step, a line per series with its Student-t
//!   interval as error bars, and the theory's predicted exponent as a cross where it has one.
//! - `steps_by_series.{png,svg}`: the nanoGPT-μP layout, a row per series and a column per quantity, a line per step.
//! - `loss_<series>.{png,svg}`: training loss against step, a line per width.
//!
//! Limit studies draw their own figures ([`limit`]).

pub mod limit;
pub mod lr;
pub mod verify;

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::{FitKey, FitRow, Grouped};
use crate::studies::store::file_stem;

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

/// The colour of series `i`.
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

/// A chart on f64 axes, as every figure here draws.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws the legend box of `chart` at `position`, in the style every figure shares.
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
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

fn series_names(grouped: &Grouped) -> Vec<String> {
    let mut v: Vec<String> = grouped.keys().map(|k| k.series.clone()).collect();
    v.dedup();
    v.sort();
    v.dedup();
    v
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
        n += png_and_svg!(dir, format!("coord_{quantity}"), (1400, 420), |root| coord(
            cfg, grouped, layer, quantity, root
        ))?;
        n += png_and_svg!(
            dir,
            format!("slopes_{quantity}"),
            (800, 500),
            |root| slopes(fits, layer, quantity, root)
        )?;
    }
    let quantities = [
        Quantity::DzRms,
        Quantity::UpdateOutRms,
        Quantity::BottleneckRms,
    ];
    let rows = series_names(grouped).len() as u32;
    n += png_and_svg!(dir, "steps_by_series", (1200, 260 * rows + 50), |root| {
        by_series(cfg, grouped, layer, &quantities, root)
    })?;
    for (i, series) in series_names(grouped).iter().enumerate() {
        n += png_and_svg!(
            dir,
            format!("loss_{}", file_stem(series)),
            (700, 450),
            |root| loss(cfg, grouped, series, i, root)
        )?;
    }
    Ok(n)
}

/// The label of a log₂ axis position: `2^x` written out when x is (within 0.05 of) an integer, nothing between, so a
/// width axis reads 64, 128, … 2048 and nothing else.
fn power_of_two_label(x: &f64) -> String {
    let k = x.round();
    if (x - k).abs() < 0.05 {
        format!("{}", 2f64.powf(k))
    } else {
        String::new()
    }
}

fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    (lo <= hi).then(|| (lo.log2().floor() - 0.2, hi.log2().ceil() + 0.2))
}

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

/// The μP layout; returns false when there is nothing to draw.
fn coord<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    layer: &str,
    quantity: Quantity,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let mut steps: Vec<u64> = grouped
        .keys()
        .filter(|k| k.layer == layer && k.quantity == quantity)
        .map(|k| k.step)
        .collect();
    steps.sort();
    steps.dedup();
    let wanted: Vec<u64> = [1u64, 2, 4, 8, cfg.steps]
        .into_iter()
        .filter(|s| steps.contains(s))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let Some((ylo, yhi)) = log_range(
        grouped
            .iter()
            .filter(|(k, _)| k.layer == layer && k.quantity == quantity)
            .flat_map(|(_, v)| v.iter().flatten().copied()),
    ) else {
        return Ok(false);
    };
    if wanted.is_empty() {
        return Ok(false);
    }
    root.fill(&WHITE).map_err(plot_err)?;
    let (title, body) = root.split_vertically(40);
    title.titled(&format!("{quantity} at {layer} vs width (log2–log2; line: geometric mean over seeds, band: seed range)"), ("sans-serif", 20)).map_err(plot_err)?;
    let panels = body.split_evenly((1, wanted.len()));
    let (xlo, xhi) = (
        (cfg.widths[0] as f64).log2() - 0.3,
        (*cfg.widths.last().expect("widths") as f64).log2() + 0.3,
    );
    let names = series_names(grouped);
    for (panel, &t) in panels.iter().zip(&wanted) {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("t = {t}"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("log2 width")
            .y_desc(format!("log2 {quantity}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_err)?;
        for (i, series) in names.iter().enumerate() {
            let key = FitKey {
                series: series.clone(),
                layer: layer.to_string(),
                quantity,
                step: t,
            };
            let Some(v) = grouped.get(&key) else {
                continue;
            };
            let pts: Vec<(f64, f64, f64, f64)> = cfg
                .widths
                .iter()
                .zip(v)
                .filter_map(|(w, row)| {
                    let g = geo_mean(row);
                    let finite: Vec<f64> = row
                        .iter()
                        .copied()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .collect();
                    (g.is_finite() && !finite.is_empty()).then(|| {
                        let (mn, mx) = finite
                            .iter()
                            .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
                        ((*w as f64).log2(), g.log2(), mn.log2(), mx.log2())
                    })
                })
                .collect();
            let c = colour(i);
            let band: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.0, p.3))
                .chain(pts.iter().rev().map(|p| (p.0, p.2)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.15))))
                .map_err(plot_err)?;
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    c.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(series.as_str())
                .legend(line_key(c.stroke_width(2).into()));
            chart
                .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, c.filled())))
                .map_err(plot_err)?;
        }
        if t == wanted[0] {
            draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
        }
    }
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// The nanoGPT-μP layout: a row per series, a column per quantity at `layer`, x = width and y = the quantity on log₂
/// axes, a line per step coloured from blue (early) to red (late), geometric mean over seeds.
fn by_series<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    layer: &str,
    quantities: &[Quantity],
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let names = series_names(grouped);
    let present: Vec<Quantity> = quantities
        .iter()
        .copied()
        .filter(|q| grouped.keys().any(|k| k.layer == layer && k.quantity == *q))
        .collect();
    if names.is_empty() || present.is_empty() {
        return Ok(false);
    }
    root.fill(&WHITE).map_err(plot_err)?;
    let (title, body) = root.split_vertically(40);
    title.titled(&format!("{layer}: quantity vs width, one line per step (blue: early, red: late), a row per series"), ("sans-serif", 20)).map_err(plot_err)?;
    let panels = body.split_evenly((names.len(), present.len()));
    let (xlo, xhi) = (
        (cfg.widths[0] as f64).log2() - 0.3,
        (*cfg.widths.last().expect("widths") as f64).log2() + 0.3,
    );
    let tmax = cfg.steps.max(1) as f64;
    for (r, series) in names.iter().enumerate() {
        for (c, q) in present.iter().enumerate() {
            let panel = &panels[r * present.len() + c];
            let keys: Vec<_> = grouped
                .iter()
                .filter(|(k, _)| &k.series == series && k.layer == layer && k.quantity == *q)
                .collect();
            let Some((ylo, yhi)) =
                log_range(keys.iter().flat_map(|(_, v)| v.iter().flatten().copied()))
            else {
                continue;
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{series} · {q}"), ("sans-serif", 14))
                .margin(6)
                .x_label_area_size(25)
                .y_label_area_size(40)
                .build_cartesian_2d(xlo..xhi, ylo..yhi)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(plot_err)?;
            for (k, v) in keys {
                let frac = k.step as f64 / tmax;
                let col = RGBColor(
                    (59.0 + 121.0 * frac * 1.6).min(230.0) as u8,
                    (76.0 * (1.0 - frac) + 40.0) as u8,
                    (192.0 * (1.0 - frac) + 38.0) as u8,
                );
                let pts: Vec<(f64, f64)> = cfg
                    .widths
                    .iter()
                    .zip(v)
                    .filter_map(|(w, row)| {
                        let g = geo_mean(row);
                        (g.is_finite() && g > 0.0).then(|| ((*w as f64).log2(), g.log2()))
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, col.stroke_width(1)))
                    .map_err(plot_err)?;
            }
        }
    }
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// Fitted slope vs step with interval bars; returns false when there is nothing to draw.
fn slopes<DB: DrawingBackend>(
    fits: &[FitRow],
    layer: &str,
    quantity: Quantity,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let rows: Vec<&FitRow> = fits
        .iter()
        .filter(|r| {
            r.key.layer == layer
                && r.key.quantity == quantity
                && r.fit.lo.is_finite()
                && r.fit.hi.is_finite()
        })
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let tmax = rows.iter().map(|r| r.key.step).max().unwrap_or(1) as f64;
    let ylo = rows
        .iter()
        .map(|r| r.fit.lo)
        .fold(f64::INFINITY, f64::min)
        .min(-0.6)
        - 0.1;
    let yhi = rows
        .iter()
        .map(|r| r.fit.hi)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(0.6)
        + 0.1;
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("width exponent of {quantity} at {layer}: measured (95% Student-t interval over seeds), × predicted"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..tmax + 0.5, ylo..yhi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc("slope d log / d log n")
        .draw()
        .map_err(plot_err)?;
    for y in [-1.0, -0.5, 0.0, 0.5, 1.0] {
        if y > ylo && y < yhi {
            chart
                .draw_series(LineSeries::new(
                    vec![(-0.5, y), (tmax + 0.5, y)],
                    BLACK.mix(0.25),
                ))
                .map_err(plot_err)?;
        }
    }
    let mut names: Vec<&str> = rows.iter().map(|r| r.key.series.as_str()).collect();
    names.sort();
    names.dedup();
    let k = names.len() as f64;
    for (i, name) in names.iter().enumerate() {
        let c = colour(i);
        let off = (i as f64 - (k - 1.0) / 2.0) * 0.08;
        let mut pts: Vec<&&FitRow> = rows.iter().filter(|r| r.key.series == *name).collect();
        pts.sort_by_key(|r| r.key.step);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|r| (r.key.step as f64 + off, r.fit.slope)),
                c.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(*name)
            .legend(line_key(c.stroke_width(2).into()));
        chart
            .draw_series(pts.iter().map(|r| {
                ErrorBar::new_vertical(
                    r.key.step as f64 + off,
                    r.fit.lo,
                    r.fit.slope,
                    r.fit.hi,
                    c.filled(),
                    6,
                )
            }))
            .map_err(plot_err)?;
        // The theory's prediction, where it has one: a cross in the series' colour.
        chart
            .draw_series(pts.iter().filter_map(|r| {
                r.predicted
                    .map(|p| Cross::new((r.key.step as f64 + off, p), 6, c.stroke_width(2)))
            }))
            .map_err(plot_err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// Training loss vs step for one series, a line per width (geometric mean over seeds).
fn loss<DB: DrawingBackend>(
    cfg: &StudyConfig,
    grouped: &Grouped,
    series: &str,
    _i: usize,
    root: DrawingArea<DB, Shift>,
) -> Result<bool> {
    let pts_for = |wi: usize| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = grouped
            .iter()
            .filter(|(k, _)| {
                k.series == series && k.layer == "model" && k.quantity == Quantity::Loss
            })
            .filter_map(|(k, v)| {
                let g = geo_mean(&v[wi]);
                (g.is_finite() && g > 0.0).then_some((k.step as f64, g.log10()))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let all: Vec<(f64, f64)> = (0..cfg.widths.len()).flat_map(pts_for).collect();
    let (ylo, yhi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let (ylo, yhi) = if ylo < yhi {
        (ylo - 0.1, yhi + 0.1)
    } else {
        (-1.0, 1.0)
    };
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{series}: training loss by width"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..cfg.steps as f64, ylo..yhi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc("log10 loss")
        .draw()
        .map_err(plot_err)?;
    let k = cfg.widths.len().max(2) - 1;
    for (wi, w) in cfg.widths.iter().enumerate() {
        let frac = wi as f64 / k as f64;
        let c = RGBColor(
            (40.0 + 200.0 * frac) as u8,
            60,
            (220.0 - 180.0 * frac) as u8,
        );
        chart
            .draw_series(LineSeries::new(pts_for(wi), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("n = {w}"))
            .legend(line_key(c.stroke_width(2).into()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}
