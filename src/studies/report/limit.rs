//! The printout of `singlora limit`: each arm's limit loss, the fitted convergence rate of its finite widths with
//! the interval and its agreement with −1/2, the exact SGD reduction's error, and divergences.

use std::fmt::Write as _;

use crate::optim::Rule;
use crate::studies::fit::Agreement;
use crate::studies::limit::{LimitConfig, LimitResults, EXPECTED_SLOPE};

/// The summary table of a limit study.
pub fn limit_table(cfg: &LimitConfig, results: &LimitResults) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>22}   {:>28}   {:<9}  exact SGD reduction",
        "arm",
        format!("limit loss t=0 → {}", cfg.steps),
        "distance ~ n^p: p [95% CI]",
        format!("vs {EXPECTED_SLOPE:+}")
    );
    for (arm, conv) in cfg.arms.iter().zip(&results.convergence) {
        let losses: Vec<(f64, f64)> = cfg
            .seeds
            .iter()
            .map(|&seed| {
                let l = &results.limits[&(arm.name.clone(), seed)].loss;
                (l[0], *l.last().expect("t = 0"))
            })
            .collect();
        let k = losses.len() as f64;
        let (l0, lt) = losses
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / k, b + y / k));
        let fit = conv
            .fit
            .as_ref()
            .map(|f| format!("{:+.2} [{:+.2}, {:+.2}]", f.slope, f.lo, f.hi))
            .unwrap_or_else(|| "no fit".into());
        let red = match (conv.reduction_error, arm.rule) {
            (Some(e), _) => format!("max error {e:.1e}"),
            (None, Rule::SignSgd { .. }) => "— (sign updates leave the span)".into(),
            (None, _) => "— (every run diverged)".into(),
        };
        let _ = writeln!(
            s,
            "{:<16} {:>22}   {:>28}   {:<9}  {red}",
            arm.name,
            format!("{l0:.3} → {lt:.3}"),
            fit,
            conv.agreement.map(Agreement::name).unwrap_or("—")
        );
        if !conv.diverged.is_empty() {
            let _ = writeln!(s, "    diverged: {}", conv.diverged.join("; "));
        }
    }
    s
}
