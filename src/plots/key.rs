//! Keys drawn beside the data, never over it: a legend in its own strip of the figure (a right margin), and a colour
//! bar for lines coloured by step.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plot_err;
use super::style::{draw_pixel_line, LineStyle};
use crate::error::Result;

/// What a legend entry shows beside its label.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Glyph {
    /// A line.
    Line(LineStyle),
    /// A shaded band.
    Band(RGBAColor),
    /// A filled dot.
    Dot(RGBColor),
    /// A hollow circle.
    Hollow(RGBColor),
    /// A cross.
    Cross(RGBColor),
    /// A vertical interval bar with caps.
    Bar(RGBColor),
    /// A heat-map cell of this fill, outlined white inside when `true`.
    Cell(RGBColor, bool),
    /// None: the label is a heading.
    Heading,
}

/// One legend entry.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    /// The glyph.
    pub glyph: Glyph,
    /// The label.
    pub label: String,
}

impl Key {
    /// An entry of `glyph` labelled `label`.
    pub fn new(glyph: Glyph, label: impl Into<String>) -> Key {
        Key {
            glyph,
            label: label.into(),
        }
    }
}

const ROW: i32 = 20;
const GLYPH: i32 = 30;

/// Draws one glyph centred vertically on `y`, from `x` to `x + GLYPH`.
fn draw_glyph<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    glyph: Glyph,
    (x, y): (i32, i32),
) -> Result<()> {
    let mid = (x + GLYPH / 2, y);
    match glyph {
        Glyph::Line(s) => return draw_pixel_line(area, (x, y), (x + GLYPH, y), s),
        Glyph::Band(c) => area.draw(&Rectangle::new(
            [(x, y - 6), (x + GLYPH, y + 6)],
            c.filled(),
        )),
        Glyph::Dot(c) => area.draw(&Circle::new(mid, 4, c.filled())),
        Glyph::Hollow(c) => area.draw(&Circle::new(mid, 5, c.stroke_width(2))),
        Glyph::Cross(c) => area.draw(&Cross::new(mid, 5, c.stroke_width(2))),
        Glyph::Bar(c) => {
            let s = c.stroke_width(1);
            area.draw(&PathElement::new(vec![(mid.0, y - 7), (mid.0, y + 7)], s))
                .and_then(|_| {
                    area.draw(&PathElement::new(
                        vec![(mid.0 - 4, y - 7), (mid.0 + 4, y - 7)],
                        s,
                    ))
                })
                .and_then(|_| {
                    area.draw(&PathElement::new(
                        vec![(mid.0 - 4, y + 7), (mid.0 + 4, y + 7)],
                        s,
                    ))
                })
        }
        Glyph::Cell(fill, outlined) => area
            .draw(&Rectangle::new(
                [(x + 6, y - 9), (x + 24, y + 9)],
                fill.filled(),
            ))
            .and_then(|_| match outlined {
                true => area.draw(&Rectangle::new(
                    [(x + 9, y - 6), (x + 21, y + 6)],
                    WHITE.stroke_width(2),
                )),
                false => Ok(()),
            }),
        Glyph::Heading => Ok(()),
    }
    .map_err(plot_err)
}

/// Draws `keys` as a list down `area` (a strip beside the panels), starting a new column when one is full.
pub(crate) fn draw_keys<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    keys: &[Key],
) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let per_column = ((h as i32 - 24) / ROW).max(1) as usize;
    let font = TextStyle::from(("sans-serif", 13).into_font());
    let label_w = keys
        .iter()
        .map(|k| {
            area.estimate_text_size(&k.label, &font)
                .map(|s| s.0)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0) as i32;
    let column_w = (label_w + GLYPH + 20).min(w as i32);
    for (i, key) in keys.iter().enumerate() {
        let (col, row) = ((i / per_column) as i32, (i % per_column) as i32);
        let (x, y) = (8 + col * column_w, 20 + row * ROW);
        let text_x = match key.glyph {
            Glyph::Heading => x,
            g => {
                draw_glyph(area, g, (x, y))?;
                x + GLYPH + 8
            }
        };
        let style = font.pos(Pos::new(HPos::Left, VPos::Center));
        area.draw_text(&key.label, &style, (text_x, y))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// Draws a vertical colour bar into `area`: the gradient `ramp(f)` for f from 0 (bottom) to 1 (top), a tick at each
/// `(f, label)` of `ticks` (labels thinned to fit, the last always shown), and `title` above.
pub(crate) fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    ticks: &[(f64, String)],
    ramp: fn(f64) -> RGBColor,
) -> Result<()> {
    let (_, h) = area.dim_in_pixel();
    let (x0, x1, top, bottom) = (14, 34, 46, h as i32 - 46);
    let centred =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    area.draw_text(title, &centred, (x0 - 4, top - 18))
        .map_err(plot_err)?;
    let span = (bottom - top).max(1);
    for y in top..=bottom {
        let f = (bottom - y) as f64 / span as f64;
        area.draw(&PathElement::new(
            vec![(x0, y), (x1, y)],
            ramp(f).stroke_width(1),
        ))
        .map_err(plot_err)?;
    }
    let every = (ticks.len() as i32 * 14 / span + 1) as usize;
    for (i, (f, label)) in ticks.iter().enumerate() {
        let y = bottom - (f.clamp(0.0, 1.0) * span as f64).round() as i32;
        area.draw(&PathElement::new(
            vec![(x1, y), (x1 + 5, y)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
        if i % every == 0 || i + 1 == ticks.len() {
            area.draw_text(label, &centred, (x1 + 8, y))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}
