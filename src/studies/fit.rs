//! Width exponents: the log-log OLS slope of a quantity against width, with a bootstrap confidence interval over
//! seeds.
//!
//! For widths $n_1 < \dots < n_k$ and seeds $s_1, \dots, s_S$, the point estimate fits
//! $\log \bar v(n) = a + p \log n$ where $\bar v(n)$ is the geometric mean over seeds (THEORY §5.0). The interval
//! resamples the seeds with replacement (the same resample at every width, since a seed fixes the data and the
//! adapter draw), refits, and takes the 2.5% and 97.5% quantiles of $p$. Non-positive or non-finite values make a
//! point unusable: a width with none left is dropped, and fewer than two widths give no fit.

use crate::rng::SeedRng;

/// Default number of bootstrap resamples of a study's slope intervals.
pub(crate) fn default_bootstrap() -> usize {
    1000
}

/// Default tolerance on a slope: |slope| below it counts as flat, and a prediction within it of the interval as
/// `near` (THEORY §5.6).
pub(crate) fn default_tolerance() -> f64 {
    0.12
}

/// Default LoRA+ ratio η_B/η_A of an arm (plain LoRA).
pub(crate) fn default_ratio() -> f64 {
    1.0
}

/// A fitted exponent.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Slope {
    /// Point estimate p.
    pub slope: f64,
    /// 2.5% bootstrap quantile.
    pub lo: f64,
    /// 97.5% bootstrap quantile.
    pub hi: f64,
    /// Widths used.
    pub widths: usize,
}

/// Ordinary least squares slope of y on x.
pub fn ols_slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// Slope of `values[w][s]` (width index w, seed index s) against `widths`, with a `resamples`-fold bootstrap over
/// seeds from `seed`. `None` if fewer than two widths have a usable value.
pub fn fit_slope(
    widths: &[usize],
    values: &[Vec<f64>],
    resamples: usize,
    seed: u64,
) -> Option<Slope> {
    let usable = |v: f64| v.is_finite() && v > 0.0;
    let point = |pick: &dyn Fn(usize) -> usize, n_seeds: usize| -> Option<f64> {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (w, row) in widths.iter().zip(values) {
            let logs: Vec<f64> = (0..n_seeds)
                .map(|k| row.get(pick(k)).copied().unwrap_or(f64::NAN))
                .filter(|&v| usable(v))
                .map(f64::ln)
                .collect();
            if !logs.is_empty() {
                xs.push((*w as f64).ln());
                ys.push(logs.iter().sum::<f64>() / logs.len() as f64);
            }
        }
        (xs.len() >= 2).then(|| ols_slope(&xs, &ys))
    };
    let n_seeds = values.iter().map(|r| r.len()).max().unwrap_or(0);
    let slope = point(&|k| k, n_seeds)?;
    let used = values
        .iter()
        .filter(|r| r.iter().any(|&v| usable(v)))
        .count();
    let mut rng = SeedRng::new(seed, "bootstrap");
    let mut boots: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let picks: Vec<usize> = (0..n_seeds).map(|_| rng.below(n_seeds)).collect();
            point(&|k| picks[k], n_seeds)
        })
        .collect();
    boots.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if boots.is_empty() {
            f64::NAN
        } else {
            boots[((p * (boots.len() - 1) as f64).round()) as usize]
        }
    };
    Some(Slope {
        slope,
        lo: q(0.025).min(slope),
        hi: q(0.975).max(slope),
        widths: used,
    })
}

/// The measured verdict for an interval against a flatness tolerance τ: `grows` if the whole interval is above τ,
/// `shrinks` if below −τ, `flat` if inside [−τ, τ], otherwise `unclear`.
pub fn verdict(s: &Slope, tol: f64) -> &'static str {
    if s.lo > tol {
        "grows"
    } else if s.hi < -tol {
        "shrinks"
    } else if s.lo >= -tol && s.hi <= tol {
        "flat"
    } else {
        "unclear"
    }
}
