//! The per-map table of a study with many adapted maps (a transformer's q, k, v, o, up, down in every block): one row
//! per map or block quantity, one column per series, each cell the width exponent at the first step and at the last
//! recorded step, marked by how it stands against the theory's prediction for that map's shape family.

use std::fmt::Write as _;

use super::{find_fit, series_names, FitRow};
use crate::models::transformer::{BLOCK_ACTIVATIONS, BLOCK_MAPS};
use crate::probes::Quantity;
use crate::studies::config::StudyConfig;
use crate::studies::fit::Agreement;

/// The mark of a fit against its prediction: `=` agree, `~` near, `x` disagree, `?` not testable, `·` no prediction.
fn mark(row: &FitRow) -> char {
    match row.agreement {
        Some(Agreement::Agree) => '=',
        Some(Agreement::Near) => '~',
        Some(Agreement::Disagree) => 'x',
        Some(Agreement::NotTestable) => '?',
        None => '·',
    }
}

/// Model order of a transformer layer name (`block.K.<map>` by block, then map; `block.K` before its maps).
pub fn order(layer: &str) -> (usize, usize, String) {
    let mut parts = layer.split('.');
    match (
        parts.next(),
        parts.next().and_then(|k| k.parse().ok()),
        parts.next(),
    ) {
        (Some("block"), Some(k), None) => (k, 0, String::new()),
        (Some("block"), Some(k), Some(m)) => {
            let i = BLOCK_MAPS
                .iter()
                .position(|b| *b == m)
                .unwrap_or(BLOCK_MAPS.len());
            (k, 1 + i, String::new())
        }
        _ => (usize::MAX, 0, layer.to_string()),
    }
}

/// One table: a row per (layer, quantity) of `rows`, a column per series, cells `slope₁ m / slope_last m`.
fn table(cfg: &StudyConfig, fits: &[FitRow], rows: &[(String, Quantity)], title: &str) -> String {
    let (first, last) = (1, cfg.last_recorded_step());
    let names = series_names(fits);
    let mut s = String::new();
    let _ = writeln!(s, "{title} at t = {first} / t = {last} (mark against the theory: = agree, ~ near, x disagree, ? not testable, · no prediction)");
    let _ = write!(s, "{:<26}", "layer quantity");
    for n in &names {
        let _ = write!(s, " {n:>17}");
    }
    let _ = writeln!(s);
    for (layer, q) in rows {
        let _ = write!(s, "{:<26}", format!("{layer} {q}"));
        for n in &names {
            let cell = |t| {
                find_fit(fits, n, layer, *q, t)
                    .map(|r| format!("{:+.2}{}", r.fit.slope, mark(r)))
                    .unwrap_or_else(|| "—".into())
            };
            let _ = write!(s, " {:>17}", format!("{} / {}", cell(first), cell(last)));
        }
        let _ = writeln!(s);
    }
    s
}

/// The per-map table of `quantity` over every adapted map, then the block coordinate checks (attention logits,
/// attention output, residual stream, MLP output), which have no prediction; empty when the study has at most one
/// adapted map and no blocks.
pub fn layer_summary(cfg: &StudyConfig, fits: &[FitRow], quantity: Quantity) -> String {
    let mut maps: Vec<String> = fits
        .iter()
        .filter(|r| r.key.quantity == quantity)
        .map(|r| r.key.layer.clone())
        .collect();
    maps.sort_by_key(|l| order(l));
    maps.dedup();
    let block_qs: Vec<Quantity> = BLOCK_ACTIVATIONS
        .iter()
        .filter_map(|a| Quantity::of_activation(a))
        .collect();
    let mut blocks: Vec<(String, Quantity)> = fits
        .iter()
        .filter(|r| block_qs.contains(&r.key.quantity))
        .map(|r| (r.key.layer.clone(), r.key.quantity))
        .collect();
    blocks.sort_by_key(|(l, q)| (order(l), block_qs.iter().position(|b| b == q)));
    blocks.dedup();
    let mut s = String::new();
    if maps.len() > 1 {
        let rows: Vec<(String, Quantity)> = maps.into_iter().map(|l| (l, quantity)).collect();
        s += &table(
            cfg,
            fits,
            &rows,
            &format!("width exponent of {quantity} per adapted map"),
        );
    }
    if !blocks.is_empty() {
        s += "\n";
        s += &table(
            cfg,
            fits,
            &blocks,
            "width exponent of the block coordinate checks",
        );
    }
    s
}
