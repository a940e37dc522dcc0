//! Which figures a sweep draws. An MLP study: the coordinate check and the fitted exponents of four quantities at the
//! summary layer, the step-by-step layout and the loss (10 figures). A transformer study: the coordinate check and
//! fitted exponents of every adapted map of the summary layer's block (one figure each, a line or panel per map), the
//! same for the block's activations, and the loss (5 figures): one figure per question, not one per map.

use super::coord::{shown_steps, CoordCheck, Line, Row};
use super::slopes::{SlopeFigure, SlopePanel};
use super::style::{part_colour, series_style, LineStyle};
use super::{describe, series_names};
use crate::models::transformer::BLOCK_MAPS;
use crate::models::ModelKind;
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::report::Grouped;

/// One figure of a sweep.
pub(super) enum SweepFigure {
    /// A coordinate check.
    Coord(CoordCheck),
    /// Fitted exponents.
    Slopes(SlopeFigure),
    /// The step-by-step layout of these quantities at the summary layer.
    Steps(Vec<Quantity>),
    /// Training and held-out loss.
    Loss,
}

/// A figure and its file stem.
pub(super) struct Planned {
    /// `<stem>.png`, `<stem>.svg`.
    pub stem: String,
    /// What it draws.
    pub figure: SweepFigure,
}

/// The quantities an MLP study draws at its summary layer.
const MLP_QUANTITIES: [Quantity; 4] = [
    Quantity::DzRms,
    Quantity::UpdateOutRms,
    Quantity::BottleneckRms,
    Quantity::DwOp,
];

/// The figures of a sweep whose summary layer is `layer`: a transformer's per block when `layer` is a block's map
/// (`block.K.<map>`), an MLP's otherwise.
pub(super) fn plan(cfg: &StudyConfig, grouped: &Grouped, layer: &str) -> Vec<Planned> {
    let block = layer
        .strip_prefix("block.")
        .and_then(|rest| rest.split_once('.'))
        .map(|(k, _)| format!("block.{k}"));
    match (cfg.model, block) {
        (ModelKind::Transformer, Some(block)) => transformer(cfg, grouped, &block),
        _ => mlp(cfg, grouped, layer),
    }
}

/// A line per series of `quantity` at `layer`, in the series' styles.
fn series_lines(
    cfg: &StudyConfig,
    grouped: &Grouped,
    layer: &str,
    quantity: Quantity,
) -> Vec<Line> {
    series_names(cfg, grouped)
        .into_iter()
        .map(|s| Line {
            label: s.clone(),
            style: series_style(cfg, &s),
            series: s,
            layer: layer.into(),
            quantity,
        })
        .collect()
}

fn mlp(cfg: &StudyConfig, grouped: &Grouped, layer: &str) -> Vec<Planned> {
    let seeds = cfg.seeds.len();
    let mut out = Vec::new();
    for q in MLP_QUANTITIES {
        let lines = series_lines(cfg, grouped, layer, q);
        let steps = shown_steps(cfg, grouped, &lines.iter().collect::<Vec<_>>(), false);
        let coord = CoordCheck {
            title: format!("{} against width", describe(q)),
            subtitle: format!("{q} at {layer}; line: geometric mean over {seeds} seeds, band: smallest to largest seed; grey: slopes 0 and −½ through the first series"),
            y_desc: q.to_string(),
            key_heading: String::new(),
            rows: vec![Row { caption: String::new(), lines }],
            steps,
        };
        out.push(Planned {
            stem: format!("coord_{q}"),
            figure: SweepFigure::Coord(coord),
        });
        let slopes = SlopeFigure {
            title: format!("Width exponent of the {} at each step", describe(q).to_lowercase()),
            subtitle: format!("slope of log {q} against log width at {layer}; bars: 95% Student-t interval over seeds; × predicted by the theory"),
            panels: vec![SlopePanel { caption: String::new(), layer: layer.into(), quantity: q }],
            columns: 1,
        };
        out.push(Planned {
            stem: format!("slopes_{q}"),
            figure: SweepFigure::Slopes(slopes),
        });
    }
    let steps = vec![
        Quantity::DzRms,
        Quantity::UpdateOutRms,
        Quantity::BottleneckRms,
    ];
    out.push(Planned {
        stem: "steps_by_series".into(),
        figure: SweepFigure::Steps(steps),
    });
    out.push(Planned {
        stem: "loss".into(),
        figure: SweepFigure::Loss,
    });
    out
}

/// One part of a block a transformer figure shows: a map's dz_rms or one of the block's activations.
struct Part {
    /// Its name in legends and captions.
    label: String,
    /// Layer.
    layer: String,
    /// Quantity.
    quantity: Quantity,
}

/// A row per series, a line per part labelled and coloured by its place.
fn part_rows(cfg: &StudyConfig, grouped: &Grouped, parts: &[Part]) -> Vec<Row> {
    series_names(cfg, grouped)
        .into_iter()
        .map(|s| Row {
            caption: s.clone(),
            lines: parts
                .iter()
                .enumerate()
                .map(|(i, p)| Line {
                    label: p.label.clone(),
                    series: s.clone(),
                    layer: p.layer.clone(),
                    quantity: p.quantity,
                    style: LineStyle::solid(part_colour(i), 2),
                })
                .collect(),
        })
        .collect()
}

/// The adapted maps of `block` with a recorded dz_rms, in forward order.
fn maps(grouped: &Grouped, block: &str) -> Vec<Part> {
    BLOCK_MAPS
        .iter()
        .map(|m| Part {
            label: m.to_string(),
            layer: format!("{block}.{m}"),
            quantity: Quantity::DzRms,
        })
        .filter(|p| {
            grouped
                .keys()
                .any(|k| k.layer == p.layer && k.quantity == p.quantity)
        })
        .collect()
}

/// The activations of `block`, in forward order.
fn activations(block: &str) -> Vec<Part> {
    Quantity::BLOCK
        .iter()
        .map(|&q| Part {
            label: activation_label(q).into(),
            layer: block.into(),
            quantity: q,
        })
        .collect()
}

/// The words of a transformer coordinate check.
struct Words {
    title: String,
    what: String,
    y_desc: &'static str,
    heading: &'static str,
}

/// A coordinate check of `parts`, a row per series (step 0 shown when `initial`).
fn parts_coord(
    cfg: &StudyConfig,
    grouped: &Grouped,
    parts: &[Part],
    initial: bool,
    w: Words,
) -> CoordCheck {
    let rows = part_rows(cfg, grouped, parts);
    let lines: Vec<&Line> = rows.iter().flat_map(|r| &r.lines).collect();
    let steps = shown_steps(cfg, grouped, &lines, initial);
    let seeds = cfg.seeds.len();
    CoordCheck {
        title: w.title,
        subtitle: format!("{}; line: geometric mean over {seeds} seeds, band: smallest to largest seed; grey: slopes 0 and −½ through the first line; a row per series, each on its own axis", w.what),
        y_desc: w.y_desc.into(),
        key_heading: w.heading.into(),
        rows,
        steps,
    }
}

/// The fitted exponents of `parts`, a panel each (captioned by `caption`), a line per series.
fn parts_slopes(
    parts: &[Part],
    caption: fn(&Part) -> String,
    title: String,
    what: String,
) -> SlopeFigure {
    SlopeFigure {
        title,
        subtitle: format!("{what}; slope of log value against log width; bars: 95% Student-t interval over seeds; × predicted by the theory"),
        panels: parts
            .iter()
            .map(|p| SlopePanel { caption: caption(p), layer: p.layer.clone(), quantity: p.quantity })
            .collect(),
        columns: 3,
    }
}

fn transformer(cfg: &StudyConfig, grouped: &Grouped, block: &str) -> Vec<Planned> {
    let (maps, acts) = (maps(grouped, block), activations(block));
    let name = block.replace('.', " ");
    let coord_maps = Words {
        title: format!("Per-step change of each adapted map's output against width, {name}"),
        what: format!("dz_rms at {block}.<map>"),
        y_desc: "dz_rms",
        heading: "map",
    };
    let coord_blocks = Words {
        title: format!("Activations inside {name} against width"),
        what: format!(
            "rms at {block} (attn_logits_rms … resid_out_rms); step 0: the frozen pre-trained base"
        ),
        y_desc: "rms",
        heading: "activation",
    };
    let figures = [
        (
            "coord_maps",
            SweepFigure::Coord(parts_coord(cfg, grouped, &maps, false, coord_maps)),
        ),
        (
            "coord_blocks",
            SweepFigure::Coord(parts_coord(cfg, grouped, &acts, true, coord_blocks)),
        ),
        (
            "slopes_maps",
            SweepFigure::Slopes(parts_slopes(
                &maps,
                |p| p.layer.clone(),
                format!("Width exponent of each adapted map's per-step output change, {name}"),
                format!("dz_rms at {block}.<map>, a panel per map"),
            )),
        ),
        (
            "slopes_blocks",
            SweepFigure::Slopes(parts_slopes(
                &acts,
                |p| format!("{} ({})", p.label, p.quantity),
                format!("Width exponent of each activation inside {name}"),
                format!("rms at {block}, a panel per activation"),
            )),
        ),
        ("loss", SweepFigure::Loss),
    ];
    figures
        .into_iter()
        .map(|(stem, figure)| Planned {
            stem: stem.into(),
            figure,
        })
        .collect()
}

/// A short plain-words name of a block activation, for legends and captions.
fn activation_label(q: Quantity) -> &'static str {
    match q {
        Quantity::AttnLogitsRms => "attention logits",
        Quantity::AttnCtxRms => "heads' outputs (before W_O)",
        Quantity::AttnOutRms => "attention output",
        Quantity::ResidMidRms => "residual after attention",
        Quantity::MlpOutRms => "MLP output",
        Quantity::ResidOutRms => "residual after the block",
        _ => "",
    }
}
