//! C7: equal parameter budget, SingLoRA at rank 2r against LoRA at rank r on one square layer (both 2nr trainable
//! parameters), across the target symmetries of the synthetic experiment (THEORY §6.1).
//!
//! Per target and seed (a seed fixes the base, the data and the target for both adapters): the difference of the two
//! final losses, each relative to the base layer's loss (the share of the base loss each leaves), SingLoRA's minus
//! LoRA's; the mean over seeds with its Student-t interval. A difference, not a ratio: two fits that both leave
//! 10⁻⁷ and 10⁻⁴ of the base loss have both reached the target, and the ratio of such residuals is noise.

use std::ops::Not;

use super::counts::layer_count;
use super::{Check, Claim, ClaimResult, Estimate, Number, Outcome};
use crate::adapters::Method;
use crate::error::Result;
use crate::studies::lr::median;
use crate::studies::synthetic::SyntheticResult;

/// Leaving at most this share of the base loss more than LoRA counts as "as good" (1% of the base loss).
pub const TOL: f64 = 0.01;

/// One target's comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetComparison {
    /// The target's symmetry.
    pub target: String,
    /// SingLoRA's final/base loss minus LoRA's, over seeds.
    pub difference: Estimate,
    /// LoRA's median final/base loss.
    pub lora: f64,
    /// SingLoRA's median final/base loss.
    pub singlora: f64,
}

/// C7's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct C7Measurements {
    /// LoRA's rank r.
    pub lora_rank: usize,
    /// SingLoRA's rank (2r).
    pub singlora_rank: usize,
    /// LoRA's trainable parameters on the layer.
    pub lora_params: usize,
    /// SingLoRA's.
    pub singlora_params: usize,
    /// Per target.
    pub targets: Vec<TargetComparison>,
}

/// final/base, with a run that gave no loss counted as leaving everything and more (it never wins).
fn residual(f: &SyntheticResult) -> f64 {
    let r = f.ratio_to_base();
    if r.is_nan() {
        f64::INFINITY
    } else {
        r
    }
}

/// Pairs LoRA at rank `r` with SingLoRA at 2r per target and seed, on a `width` × `width` layer.
pub fn measure(fits: &[SyntheticResult], width: usize, r: usize) -> Result<C7Measurements> {
    let mut targets: Vec<String> = fits.iter().map(|f| f.target.clone()).collect();
    targets.dedup();
    let pick = |t: &str, m: Method, rank: usize| -> Vec<&SyntheticResult> {
        fits.iter()
            .filter(|f| f.target == t && f.method == m.name() && f.rank == rank)
            .collect()
    };
    let targets = targets
        .iter()
        .map(|t| {
            let (lora, sing) = (pick(t, Method::Lora, r), pick(t, Method::Singlora, 2 * r));
            let diffs: Vec<f64> = lora
                .iter()
                .filter_map(|l| {
                    let s = sing.iter().find(|s| s.seed == l.seed)?;
                    Some(residual(s) - residual(l))
                })
                .collect();
            let med = |v: &[&SyntheticResult]| {
                median(&v.iter().map(|f| f.ratio_to_base()).collect::<Vec<_>>())
            };
            TargetComparison {
                target: t.clone(),
                difference: Estimate::mean_of(&diffs).unwrap_or(Estimate::missing()),
                lora: med(&lora),
                singlora: med(&sing),
            }
        })
        .collect();
    Ok(C7Measurements {
        lora_rank: r,
        singlora_rank: 2 * r,
        lora_params: layer_count(Method::Lora, width, width, r)?,
        singlora_params: layer_count(Method::Singlora, width, width, 2 * r)?,
        targets,
    })
}

/// "SingLoRA is at least as good on this target": the difference's interval is not above [`TOL`].
fn as_good(t: &TargetComparison) -> Outcome {
    t.difference.exceeds(TOL).not()
}

/// C7's verdict. Core: the budgets are equal; on some target SingLoRA is at least as good. Conditions: it is at least
/// as good on every target.
pub fn judge(m: &C7Measurements) -> ClaimResult {
    let some = m
        .targets
        .iter()
        .map(as_good)
        .reduce(Outcome::or)
        .unwrap_or(Outcome::Unclear);
    let mut checks = vec![
        Check::core(
            format!("equal budget: LoRA at rank {} and SingLoRA at rank {} allocate the same number of trainable parameters ({} and {})", m.lora_rank, m.singlora_rank, m.lora_params, m.singlora_params),
            Outcome::of(m.lora_params == m.singlora_params),
        ),
        Check::core(
            format!("on some target SingLoRA is at least as good as LoRA: SingLoRA's final/base loss minus LoRA's, mean over seeds with its interval not above {TOL} (it leaves at most 1% of the base loss more)"),
            some,
        ),
    ];
    for t in &m.targets {
        checks.push(Check::condition(
            format!(
                "{} target: SingLoRA at least as good (difference {} not above {TOL})",
                t.target,
                t.difference.sci(1)
            ),
            as_good(t),
        ));
    }
    let mut numbers = Vec::new();
    for t in &m.targets {
        numbers.push(Number::new(
            format!(
                "{}: final/base LoRA r={} | SingLoRA r={}",
                t.target, m.lora_rank, m.singlora_rank
            ),
            format!("{:.1e} | {:.1e}", t.lora, t.singlora),
        ));
        numbers.push(Number::new(
            format!("{}: SingLoRA − LoRA final/base", t.target),
            t.difference.sci(1),
        ));
    }
    let setting = format!(
        "The synthetic experiment (THEORY §6.1): one square layer fitted by Adam to a rank-{r} PSD, NSD or asymmetric shift of its base, with LoRA at rank {r} and SingLoRA at rank {} — the same trainable parameter count on a square layer; the paper's LLaMA, RoBERTa and GPT-2 comparisons are outside what this tool can run. A seed draws the base, the data and the target, shared by both adapters.",
        m.singlora_rank,
        r = m.lora_rank
    );
    ClaimResult::new(Claim::C7, checks, numbers, setting).with_figures(&["synthetic/synthetic.png"])
}
