//! Finite-size corrections the power counting leaves out, computed for a study's own batch and widths.
//!
//! Under sign updates (Adam's first step), $\Delta A_{in}^\top h_b = \eta\sum_j \mathrm{sign}(\nabla_{jk})\,h_{bj}$ is a
//! coherent part $d_{in}\kappa_b$ plus a random part $\sqrt{d_{in}}$; for the sign of a Gaussian sum over a batch of N,
//! $\kappa^2 \ge 1/(\pi N)$, so the coherent sum is reached only for $d_{in} \gg \pi N$ and its size carries the factor
//! $\sqrt{1 + \pi N/d_{in}}$ (derivation and measurement: tests/theory.rs, `one_layer_first_step_agrees_off_the_table`).
//! A log-log fit over widths $n_1 … n_k$ (with $d_{in} = n$) is therefore biased by the least-squares slope of
//! $\tfrac12\ln(1 + \pi N/n)$ against $\ln n$: −0.054 at N = 8 and −0.15 at N = 32 over n = 64 … 1024.

use crate::linalg::ols_slope;

/// The slope bias $\mathrm{OLS}_{\ln n}\big[\tfrac12\ln(1 + \pi N/n)\big]$ of a coherent sign-update sum over a batch of
/// `batch` rows, fitted over `widths` (see the module doc); 0 with fewer than two widths.
pub fn coherence_bias(batch: usize, widths: &[usize]) -> f64 {
    if widths.len() < 2 {
        return 0.0;
    }
    let x: Vec<f64> = widths.iter().map(|&n| (n as f64).ln()).collect();
    let y: Vec<f64> = widths
        .iter()
        .map(|&n| 0.5 * (1.0 + std::f64::consts::PI * batch as f64 / n as f64).ln())
        .collect();
    ols_slope(&x, &y)
}
