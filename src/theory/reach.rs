//! When a prediction's leading terms actually lead at the study's widths: the reach condition $\eta_0 t\,n^{gap} \gg 1$
//! (THEORY §5.6 second-order caveat, §5.7 "the aligned parts … overtake the initial ones only once
//! $\eta_0 t\,n^{\text{gap}} \gg 1$").
//!
//! A prediction's exponent is the maximum over its terms ([`super::dominant`]). Under sign updates (Adam-like) every
//! coordinate of a step is $\eta = \eta_0 n^{-c}$ (exactly at step 1, at most that after it), so the accumulated
//! change D after t steps has coordinates $\eta_0\,\Lambda_t\,n^{-c}$ along the aligned directions, with
//! $\Lambda_t = \sum_{s \le t}\lambda(s)$ the schedule's summed factor (t for a constant rate). A term with k more
//! factors D (or, at t = 1, one more step ΔA) than the prediction's lowest-order terms is then
//! $\approx (\eta_0\Lambda_t)^k\,n^{e}$ with O(1) prefactors; its *order* k is what the engine attaches to each term.
//! The power counting keeps only the exponents: it assumes every leading term (exponent $e_{max}$) outweighs every term
//! behind it. For a term j behind ($e_j < e_{max}$) the ratio is
//! $$R_j(n) = \sum_{i\ \text{leading}} (\eta_0\Lambda_t)^{k_i - k_j}\, n^{e_{max} - e_j},$$
//! which for one leading term one order above is $\eta_0\,t\,n^{gap}$, gap $= e_{max} - e_j$: the aligned part must
//! overtake the initial one. With the leading term one order *below* it reads $n^{gap}/(\eta_0 t)$: a higher-order
//! term behind in n must stay behind. A term behind that shares its order with some leading term carries no
//! $\eta_0 t$ condition (its ratio is $n^{gap}$ whatever the rate: a pure width separation, which every power count
//! assumes), so it is left out. $R_j$ grows with n ($e_{max} > e_j$), so the smallest fitted width is where the
//! condition is hardest; the prediction is *reached* when $\min_j R_j(n_{min}) \ge$ [`REACHED`].
//!
//! Under SGD a step is η times the gradient, whose O(1) prefactor the engine does not know, so no ratio can be
//! computed from $\eta_0$ alone; SGD's fixed-t predictions keep their initial exponents and need no alignment
//! (THEORY §5.7), and carry no reach.

use serde::Serialize;

use super::{Term, EPS};
use crate::adapters::Role;

/// How large the ratio of the leading terms to a term behind them must be at the smallest fitted width for the
/// prediction to be graded ("≫ 1"). Derivation: writing the measured quantity as $L(n)\,(1 + 1/R(n))$ with
/// $R \propto n^{gap}$, its log-log slope is the leading exponent plus
/// $\frac{d}{d\ln n}\ln(1 + 1/R) = -gap/(1 + R)$, so at $R \ge 10$ the term behind shifts the local slope by at most
/// gap/11 (≤ 0.09 for the gaps ≤ 1 of the covered settings, below the default flatness tolerance 0.12) and the level
/// by at most ln 1.1 ≈ 0.1; at R = 1 it would shift the slope by gap/2, which no tolerance absorbs.
pub const REACHED: f64 = 10.0;

/// A term behind a prediction's leading terms, and how the leading terms' orders stand against its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Behind {
    /// The term's name (`A₀ᵀh`, `T1`, …).
    pub term: &'static str,
    /// $e_{max} - e_j > 0$.
    pub gap: f64,
    /// $k_i - k_j$ for each leading term i (none zero).
    pub orders: Vec<i32>,
}

impl Behind {
    /// $R_j = \sum_i (\eta_0\Lambda_t)^{k_i - k_j}\,n^{gap}$ at `rate_steps` = $\eta_0\Lambda_t$ and width `n`.
    pub fn ratio(&self, rate_steps: f64, n: f64) -> f64 {
        let sum: f64 = self.orders.iter().map(|&k| rate_steps.powi(k)).sum();
        sum * n.powf(self.gap)
    }
}

/// What a prediction needs to be reached at a study's rate, steps and widths (module doc).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reach {
    /// The role whose rate prefactor η₀ the orders count (SingLoRA's A; LoRA's A, whose accumulated change D the
    /// higher-order terms carry).
    #[serde(skip)]
    pub rate: Role,
    /// The leading terms' names.
    pub leading: Vec<&'static str>,
    /// The terms behind them that carry an η₀·t condition.
    pub behind: Vec<Behind>,
}

impl Reach {
    /// The reach condition of `terms` with their orders (same length): `None` when no term behind the leading ones
    /// carries an η₀·t condition.
    pub fn of(terms: &[Term], orders: &[u32], rate: Role) -> Option<Reach> {
        assert_eq!(terms.len(), orders.len(), "one order per term");
        let e_max = terms.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max);
        let lead: Vec<usize> = (0..terms.len())
            .filter(|&i| terms[i].1 >= e_max - EPS)
            .collect();
        let behind: Vec<Behind> = (0..terms.len())
            .filter(|&j| terms[j].1 < e_max - EPS)
            .filter(|&j| lead.iter().all(|&i| orders[i] != orders[j]))
            .map(|j| Behind {
                term: terms[j].0,
                gap: e_max - terms[j].1,
                orders: lead
                    .iter()
                    .map(|&i| orders[i] as i32 - orders[j] as i32)
                    .collect(),
            })
            .collect();
        (!behind.is_empty()).then(|| Reach {
            rate,
            leading: lead.iter().map(|&i| terms[i].0).collect(),
            behind,
        })
    }

    /// $\min_j R_j$ at `rate_steps` = $\eta_0\Lambda_t$ and the smallest fitted width `n_min`.
    pub fn ratio(&self, rate_steps: f64, n_min: usize) -> f64 {
        self.behind
            .iter()
            .map(|b| b.ratio(rate_steps, n_min as f64))
            .fold(f64::INFINITY, f64::min)
    }

    /// The condition in words, e.g. `Dᵀh leads A₀ᵀh once η₀·t·n^0.50 ≫ 1` (η₀·t: the rate prefactor times the summed
    /// schedule; "≫ 1" is checked against [`REACHED`] at the smallest fitted width).
    pub fn condition(&self) -> String {
        let lead = self.leading.join(" + ");
        let parts: Vec<String> = self
            .behind
            .iter()
            .map(|b| {
                let powers: Vec<String> = b
                    .orders
                    .iter()
                    .map(|&k| match k {
                        1 => format!("η₀·t·n^{:.2}", b.gap),
                        -1 => format!("n^{:.2}/(η₀·t)", b.gap),
                        k => format!("(η₀·t)^{k}·n^{:.2}", b.gap),
                    })
                    .collect();
                format!("{} once {} ≫ 1", b.term, powers.join(" + "))
            })
            .collect();
        format!("{lead} leads {}", parts.join(", "))
    }
}
