//! Where a figure's parts go, in pixels: a title band across the top, a key strip (legend or colour bar) down the
//! right, and the panels in between, so that no key ever covers data. A drawn figure reports its [`Frame`], and a test
//! can check the file against it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plot_err;
use crate::error::Result;

/// The height of the title band: a title line and a subtitle line.
pub const HEAD: u32 = 58;

/// A rectangle of pixels, `left ≤ x < right`, `top ≤ y < bottom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// The first column.
    pub left: i32,
    /// The first row.
    pub top: i32,
    /// One past the last column.
    pub right: i32,
    /// One past the last row.
    pub bottom: i32,
}

impl Rect {
    /// Whether the point (x, y) lies inside.
    pub fn contains(&self, (x, y): (f64, f64)) -> bool {
        x >= self.left as f64
            && x < self.right as f64
            && y >= self.top as f64
            && y < self.bottom as f64
    }

    /// Whether the two rectangles share a pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }
}

/// The layout of one figure: a `width` × `height` canvas, the title band of [`HEAD`] pixels, a key strip `key` pixels
/// wide at the right (below the title band), and the panels left of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Canvas width in pixels.
    pub width: u32,
    /// Canvas height in pixels.
    pub height: u32,
    /// Width of the key strip.
    pub key: u32,
}

impl Frame {
    /// A canvas of `size` with a key strip `key` pixels wide.
    pub fn new(size: (u32, u32), key: u32) -> Frame {
        Frame {
            width: size.0,
            height: size.1,
            key: key.min(size.0),
        }
    }

    /// The canvas size, as plotters takes it.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Where the panels go: below the title band, left of the key strip.
    pub fn panels(&self) -> Rect {
        Rect {
            left: 0,
            top: HEAD as i32,
            right: (self.width - self.key) as i32,
            bottom: self.height as i32,
        }
    }

    /// Where the key goes: the strip right of the panels, below the title band.
    pub fn key_strip(&self) -> Rect {
        Rect {
            left: (self.width - self.key) as i32,
            top: HEAD as i32,
            right: self.width as i32,
            bottom: self.height as i32,
        }
    }

    /// Fills `root` white, writes `title` (plain words) and `subtitle` (smaller, grey: names and details) across the
    /// title band, and returns the panels' area and the key strip.
    pub(crate) fn split<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        title: &str,
        subtitle: &str,
    ) -> Result<(DrawingArea<DB, Shift>, DrawingArea<DB, Shift>)> {
        root.fill(&WHITE).map_err(plot_err)?;
        let (head, body) = root.split_vertically(HEAD);
        let centre = self.width as i32 / 2;
        let top = Pos::new(HPos::Center, VPos::Top);
        let big = TextStyle::from(("sans-serif", 20).into_font()).pos(top);
        head.draw_text(title, &big, (centre, 8)).map_err(plot_err)?;
        let room = self.width.saturating_sub(16);
        for (line, y, style) in subtitle_lines(&head, subtitle, room)? {
            head.draw_text(line, &style.pos(top), (centre, y))
                .map_err(plot_err)?;
        }
        Ok(body.split_horizontally(self.width - self.key))
    }
}

/// The subtitle's lines, their tops and their style within `room` pixels: one line at 13 px if it fits; else two,
/// broken at the `; ` nearest the middle, at the largest size from 12 down to 9 px at which both fit (a subtitle
/// that fits nowhere is drawn at 9 px and clipped by the canvas).
fn subtitle_lines<'a, DB: DrawingBackend>(
    head: &DrawingArea<DB, Shift>,
    subtitle: &'a str,
    room: u32,
) -> Result<Vec<(&'a str, i32, TextStyle<'static>)>> {
    let grey =
        |px: u32| TextStyle::from(("sans-serif", px).into_font()).color(&RGBColor(90, 90, 90));
    let width = |text: &str, px: u32| -> Result<u32> {
        Ok(head
            .estimate_text_size(text, &grey(px))
            .map_err(plot_err)?
            .0)
    };
    if width(subtitle, 13)? <= room {
        return Ok(vec![(subtitle, 34, grey(13))]);
    }
    let middle = subtitle.len() / 2;
    let Some(cut) = subtitle
        .match_indices("; ")
        .map(|(i, _)| i)
        .min_by_key(|&i| i.abs_diff(middle))
    else {
        return Ok(vec![(subtitle, 34, grey(11))]);
    };
    let (first, second) = (&subtitle[..cut + 1], &subtitle[cut + 2..]);
    let mut px = 12;
    while px > 9 && width(first, px)?.max(width(second, px)?) > room {
        px -= 1;
    }
    Ok(vec![
        (first, 31, grey(px)),
        (second, 31 + px as i32 + 2, grey(px)),
    ])
}

/// A figure written as `<stem>.png` and `<stem>.svg`, and its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    /// The file name without extension.
    pub stem: String,
    /// Where its parts are.
    pub frame: Frame,
    /// Coordinates its drawing was asked to place that were not finite (NaN, ±∞): 0 in a correct figure, whose
    /// routines leave such values out (a line breaks there) rather than let plotters pin them to an edge.
    pub non_finite: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_strip_and_the_panels_tile_the_body() {
        let f = Frame::new((1000, 600), 230);
        let (p, k) = (f.panels(), f.key_strip());
        assert!(!p.overlaps(&k));
        assert_eq!((p.right, k.left, k.right), (770, 770, 1000));
        assert_eq!((p.top, p.bottom), (HEAD as i32, 600));
        assert!(k.contains((999.0, 599.0)) && !k.contains((769.5, 300.0)));
    }
}
