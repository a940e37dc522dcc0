//! Line styles every figure of a study shares: colour = arm (its place among the study's arms, so an arm has one
//! colour in every figure), dash = the rate exponent c (solid for the study's first `lr_exponents` value, dashed for
//! the second, dotted for the third, long dashes for a fourth; arms with fixed per-role exponents solid); widths in
//! shades of a colour, light (narrow) to dark (wide); steps on a blue → purple → red ramp.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::axes::Chart;
use super::{colour, plot_err};
use crate::error::Result;
use crate::studies::config::StudyConfig;

/// How a line is dashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dash {
    /// A solid line.
    Solid,
    /// Dashes.
    Dashed,
    /// Dots.
    Dotted,
    /// Long dashes.
    Long,
}

impl Dash {
    /// The dash of the `i`-th rate exponent.
    pub fn nth(i: usize) -> Dash {
        [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::Long][i % 4]
    }

    /// (dash, gap) in pixels; `None` for a solid line.
    fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((8, 5)),
            Dash::Dotted => Some((2, 4)),
            Dash::Long => Some((16, 5)),
        }
    }
}

/// The look of one line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineStyle {
    /// Colour.
    pub colour: RGBColor,
    /// Dash.
    pub dash: Dash,
    /// Stroke width in pixels.
    pub width: u32,
}

impl LineStyle {
    /// A solid line.
    pub fn solid(colour: RGBColor, width: u32) -> LineStyle {
        LineStyle {
            colour,
            dash: Dash::Solid,
            width,
        }
    }

    /// The same line with another dash.
    pub fn dashed(self, dash: Dash) -> LineStyle {
        LineStyle { dash, ..self }
    }

    fn shape(&self) -> ShapeStyle {
        self.colour.stroke_width(self.width)
    }
}

/// The arm and the index of the rate exponent of a series: from the study's grid, or read from a name `ARM@c=C`.
fn arm_and_exponent(cfg: &StudyConfig, series: &str) -> (Option<usize>, Option<usize>) {
    let arm_of = |name: &str| cfg.arms.iter().position(|a| a.name == name);
    if let Some((_, arm, exps)) = cfg.series().into_iter().find(|s| s.0 == series) {
        let c = exps.get("default").filter(|_| arm.lr_exponent.is_none());
        let ci = c.and_then(|c| cfg.lr_exponents.iter().position(|x| x == c));
        return (arm_of(&arm.name), ci);
    }
    match series.split_once("@c=") {
        Some((arm, c)) => {
            let c: Option<f64> = c.parse().ok();
            let ci = c.and_then(|c| cfg.lr_exponents.iter().position(|&x| x == c));
            (arm_of(arm), ci)
        }
        None => (arm_of(series), None),
    }
}

/// The style of `series` in a study: its arm's colour, its exponent's dash, 2 px.
pub(crate) fn series_style(cfg: &StudyConfig, series: &str) -> LineStyle {
    let (arm, c) = arm_and_exponent(cfg, series);
    LineStyle {
        colour: colour(arm.unwrap_or(cfg.arms.len())),
        dash: c.map(Dash::nth).unwrap_or(Dash::Solid),
        width: 2,
    }
}

/// The colour of `series`'s arm.
pub(crate) fn arm_colour(cfg: &StudyConfig, series: &str) -> RGBColor {
    series_style(cfg, series).colour
}

/// The colour of part `i` of a block (a map or an activation): teal, burnt orange, slate purple, magenta, gold and
/// near-black, apart from the arms' colours so that a map is never read as a method.
pub(crate) fn part_colour(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(27, 158, 119),
        RGBColor(217, 95, 2),
        RGBColor(117, 112, 179),
        RGBColor(231, 41, 138),
        RGBColor(200, 160, 0),
        RGBColor(40, 40, 40),
    ];
    C[i % C.len()]
}

/// The shade of width index `i` of `k` in `base`: a light tint for the narrowest, a dark shade for the widest.
pub(crate) fn width_shade(base: RGBColor, i: usize, k: usize) -> RGBColor {
    let f = i as f64 / (k.max(2) - 1) as f64;
    let light = |c: u8| 255.0 - (255.0 - c as f64) * 0.35;
    let dark = |c: u8| c as f64 * 0.55;
    let mix = |c: u8| (light(c) + (dark(c) - light(c)) * f).round() as u8;
    RGBColor(mix(base.0), mix(base.1), mix(base.2))
}

/// The colour of a step at fraction `f` ∈ [0, 1] of the run: blue (early) through purple to red (late).
pub(crate) fn step_colour(f: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [(33., 102., 172.), (118., 42., 131.), (202., 0., 32.)];
    let f = f.clamp(0.0, 1.0) * 2.0;
    let i = (f.floor() as usize).min(1);
    let (a, b, t) = (STOPS[i], STOPS[i + 1], f - i as f64);
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Draws the line through `pts` (plotted units) in `style`, broken where a point is not finite (a gap, never a
/// point pinned to an edge).
pub(crate) fn draw_line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    pts: Vec<(f64, f64)>,
    style: LineStyle,
) -> Result<()> {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    for run in pts.split(|p| !finite(p)).filter(|r| r.len() >= 2) {
        let run = run.to_vec();
        match style.dash.pattern() {
            None => chart
                .draw_series(LineSeries::new(run, style.shape()))
                .map(|_| ()),
            Some((dash, gap)) => chart
                .draw_series(DashedLineSeries::new(run, dash, gap, style.shape()))
                .map(|_| ()),
        }
        .map_err(plot_err)?;
    }
    Ok(())
}

/// Draws a line from `a` to `b` (pixels of `area`) in `style`: a legend's glyph.
pub(crate) fn draw_pixel_line<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    style: LineStyle,
) -> Result<()> {
    match style.dash.pattern() {
        None => area.draw(&PathElement::new(vec![a, b], style.shape())),
        Some((dash, gap)) => area.draw(&DashedPathElement::new(
            vec![a, b],
            dash,
            gap,
            style.shape(),
        )),
    }
    .map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_is_the_arm_and_dash_the_exponent() {
        let cfg = StudyConfig::default();
        let s = |name: &str| series_style(&cfg, name);
        assert_eq!(s("lora+@c=0.5").colour, s("lora+@c=1").colour);
        assert_ne!(s("lora@c=0.5").colour, s("lora+@c=0.5").colour);
        assert_eq!(s("lora@c=0.5").dash, Dash::Solid);
        assert_eq!(s("singlora@c=1").dash, Dash::Dashed);
        assert_eq!(s("lora+@c=1").colour, colour(1));
    }
}
