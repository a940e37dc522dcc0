//! Reference lines a reader compares the data with, drawn light grey and labelled: width exponents 0 and −½ (and the
//! flat band ±τ, shaded) as lines of those slopes on a log–log figure, or as levels on a figure of fitted slopes.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axes::{Axis, Chart};
use super::key::{Glyph, Key};
use super::plot_err;
use super::style::{draw_line, LineStyle};
use crate::error::Result;

/// The grey of reference lines.
pub(crate) const REF_GREY: RGBColor = RGBColor(150, 150, 150);

/// The shade of the flat band.
pub(crate) fn band_colour() -> RGBAColor {
    RGBColor(120, 120, 120).mix(0.12)
}

/// The exponents every width figure is read against: 0 (width-stable) and −½.
pub(crate) const REFERENCE_SLOPES: [(f64, &str); 2] = [(0.0, "slope 0"), (-0.5, "slope −½")];

fn ref_style() -> LineStyle {
    LineStyle::solid(REF_GREY, 1)
}

/// The legend entries of the references: one for the lines (each is labelled where it is drawn), and the flat band
/// when there is one.
pub(crate) fn reference_keys(slopes: &[(f64, &str)], band: Option<f64>) -> Vec<Key> {
    let names: Vec<&str> = slopes
        .iter()
        .map(|(_, label)| label.strip_prefix("slope ").unwrap_or(label))
        .collect();
    let lines = match names.len() {
        0 => None,
        1 => Some(format!("reference slope {}", names[0])),
        _ => Some(format!("reference slopes {}", names.join(", "))),
    };
    let mut keys: Vec<Key> = lines
        .map(|l| Key::new(Glyph::Line(ref_style()), l))
        .into_iter()
        .collect();
    if let Some(tol) = band {
        keys.push(Key::new(
            Glyph::Band(band_colour()),
            format!("flat: |slope| ≤ {tol}"),
        ));
    }
    keys
}

/// The values (not plotted units) a line of slope `p` through `anchor` takes at the ends of width axis `x`: what the
/// value axis must span to show the references whole.
pub(crate) fn slope_line_ends(x: &Axis, anchor: (f64, f64), slopes: &[f64]) -> Vec<f64> {
    let (x0, y0) = anchor;
    slopes
        .iter()
        .flat_map(|p| [x.lo, x.hi].map(|xe| 2f64.powf(y0 + p * (xe - x0))))
        .collect()
}

/// Draws lines of slope p (log–log) through `anchor` (plotted units) across axis `x`, labelled at their right ends,
/// and the wedge between slopes −τ and +τ shaded when `band` is τ.
pub(crate) fn draw_slope_refs<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    x: &Axis,
    anchor: (f64, f64),
    slopes: &[(f64, &str)],
    band: Option<f64>,
) -> Result<()> {
    let (x0, y0) = anchor;
    let at = |p: f64, xe: f64| (xe, y0 + p * (xe - x0));
    if let Some(tol) = band {
        // Two triangles meeting at the anchor (one polygon through it would cross itself).
        let wedges = [x.lo, x.hi]
            .map(|xe| Polygon::new(vec![anchor, at(tol, xe), at(-tol, xe)], band_colour()));
        chart.draw_series(wedges).map_err(plot_err)?;
    }
    for &(p, label) in slopes {
        draw_line(chart, vec![at(p, x.lo), at(p, x.hi)], ref_style())?;
        draw_ref_label(chart, label, at(p, x.hi), HPos::Right)?;
    }
    Ok(())
}

/// Draws horizontal lines at the `levels` across axis `x`, labelled at their left ends, and the band [−τ, τ]
/// shaded when `band` is τ.
pub(crate) fn draw_level_refs<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    x: &Axis,
    levels: &[(f64, &str)],
    band: Option<f64>,
) -> Result<()> {
    if let Some(tol) = band {
        let rect = [(x.lo, -tol), (x.hi, tol)];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                rect,
                band_colour().filled(),
            )))
            .map_err(plot_err)?;
    }
    for &(y, label) in levels {
        draw_line(chart, vec![(x.lo, y), (x.hi, y)], ref_style())?;
        draw_ref_label(chart, label, (x.lo, y), HPos::Left)?;
    }
    Ok(())
}

/// A reference's label, in grey just above its end `at`, ending there (`HPos::Right`) or starting there.
fn draw_ref_label<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    label: &str,
    at: (f64, f64),
    side: HPos,
) -> Result<()> {
    let style = TextStyle::from(("sans-serif", 11).into_font())
        .color(&RGBColor(110, 110, 110))
        .pos(Pos::new(side, VPos::Bottom));
    chart
        .draw_series(std::iter::once(Text::new(label.to_string(), at, style)))
        .map_err(plot_err)?;
    Ok(())
}
