//! Width exponents: the log-log OLS slope of a quantity against width, with a Student-t confidence interval over
//! seeds.
//!
//! For widths $n_1 < \dots < n_k$ and seeds $s_1, \dots, s_S$, each seed gives its own slope $p_s$, the OLS fit of
//! $\log v_s(n) = a_s + p_s \log n$ over the widths where its value is usable (finite and positive). A seed fixes the
//! data and every random draw of its runs, so the $p_s$ are independent and identically distributed; the estimate is
//! their mean $\hat p$ (with every point present, exactly the slope of the per-width geometric means, THEORY §5.0) and
//! the 95% interval is $\hat p \pm t_{0.975,\,S-1}\, \mathrm{sd}(p_s)/\sqrt S$: Student's t interval for a mean,
//! whose coverage is exactly 95% at any seed count S ≥ 2 when the $p_s$ are normal (a per-point log-normal noise makes
//! them so), measured in `tests/sweep.rs`. A percentile bootstrap over S seeds is the range of few distinct resamples
//! of a mean of S numbers and covers far less (about 75% at S = 3): it is not used. With fewer than two seeds there is
//! no interval and no verdict. A seed with fewer than two usable widths gives no slope; a fit that lost any point
//! (divergence, a non-positive value) says so (`partial`), and states how many seeds and points it rests on.

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::names::named_enum;

/// What a fitted exponent says on its own, at a flatness tolerance τ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is above τ.
    Grows,
    /// The whole interval is below −τ.
    Shrinks,
    /// The whole interval is inside [−τ, τ].
    Flat,
    /// The interval straddles ±τ.
    Unclear,
    /// Fewer than two seeds gave a slope: no interval, so no verdict.
    NoInterval,
}

impl Verdict {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Grows => "grows",
            Verdict::Shrinks => "shrinks",
            Verdict::Flat => "flat",
            Verdict::Unclear => "unclear",
            Verdict::NoInterval => "no_interval",
        }
    }
}

named_enum!(
    Verdict,
    "verdict",
    [
        Verdict::Grows,
        Verdict::Shrinks,
        Verdict::Flat,
        Verdict::Unclear,
        Verdict::NoInterval
    ]
);

/// How a measured interval compares with a predicted exponent, at a tolerance τ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// The prediction lies in the interval.
    Agree,
    /// The prediction lies within τ of the interval.
    Near,
    /// Neither.
    Disagree,
    /// The comparison cannot be made here: no interval (fewer than two seeds), or the prediction's regime is not
    /// reached over the fitted widths (its reach ratio, `theory::reach`, is below `theory::REACHED` at the smallest
    /// fitted width).
    NotTestable,
}

impl Agreement {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Agreement::Agree => "agree",
            Agreement::Near => "near",
            Agreement::Disagree => "disagree",
            Agreement::NotTestable => "not testable here",
        }
    }

    /// `agree` if `predicted` is in the fit's interval, `near` if within `tol` of it, `disagree` otherwise, and
    /// `not testable here` when the fit has no interval (an unreached regime is graded by `report::fit_all`).
    pub fn of(predicted: f64, fit: &Slope, tol: f64) -> Agreement {
        if !fit.has_interval() {
            return Agreement::NotTestable;
        }
        let (lo, hi) = (fit.lo, fit.hi);
        if predicted >= lo && predicted <= hi {
            Agreement::Agree
        } else if predicted >= lo - tol && predicted <= hi + tol {
            Agreement::Near
        } else {
            Agreement::Disagree
        }
    }
}

named_enum!(
    Agreement,
    "agreement",
    [
        Agreement::Agree,
        Agreement::Near,
        Agreement::Disagree,
        Agreement::NotTestable
    ]
);

/// How an interval was computed (the `interval` column of the fit tables).
pub const INTERVAL_METHOD: &str = "student_t_over_seeds";

/// A fitted exponent.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Slope {
    /// Point estimate p̂: the mean of the per-seed slopes.
    pub slope: f64,
    /// Lower end of the 95% interval (NaN without an interval).
    pub lo: f64,
    /// Upper end of the 95% interval (NaN without an interval).
    pub hi: f64,
    /// Widths with at least one usable point.
    pub widths: usize,
    /// Each seed's slope, in seed order (NaN for a seed with fewer than two usable widths).
    pub seed_slopes: Vec<f64>,
    /// Seeds that gave a slope.
    pub n_seeds: usize,
    /// Usable (width, seed) points.
    pub points: usize,
    /// Whether some (width, seed) point was unusable (not finite or not positive).
    pub partial: bool,
}

impl Slope {
    /// Whether the fit has an interval (at least two seeds gave a slope).
    pub fn has_interval(&self) -> bool {
        self.n_seeds >= 2
    }
}

pub use crate::linalg::ols_slope;

/// The 97.5% quantile of Student's t with `df` degrees of freedom (12.71 at df = 1, 4.30 at 2, → 1.96).
pub fn t_quantile(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64)
        .expect("df ≥ 1")
        .inverse_cdf(0.975)
}

/// Slope of `values[w][s]` (width index w, seed index s) against `widths` (see the module doc). `None` if no seed has
/// two usable widths.
pub fn fit_slope(widths: &[usize], values: &[Vec<f64>]) -> Option<Slope> {
    let usable = |v: f64| v.is_finite() && v > 0.0;
    let n_seeds = values.iter().map(|r| r.len()).max().unwrap_or(0);
    let seed_slopes: Vec<f64> = (0..n_seeds)
        .map(|s| {
            let (xs, ys): (Vec<f64>, Vec<f64>) = widths
                .iter()
                .zip(values)
                .filter_map(|(w, row)| {
                    row.get(s)
                        .copied()
                        .filter(|&v| usable(v))
                        .map(|v| ((*w as f64).ln(), v.ln()))
                })
                .unzip();
            if xs.len() >= 2 {
                ols_slope(&xs, &ys)
            } else {
                f64::NAN
            }
        })
        .collect();
    let good: Vec<f64> = seed_slopes
        .iter()
        .copied()
        .filter(|p| p.is_finite())
        .collect();
    if good.is_empty() {
        return None;
    }
    let k = good.len() as f64;
    let slope = good.iter().sum::<f64>() / k;
    let (lo, hi) = if good.len() >= 2 {
        let sd = (good.iter().map(|p| (p - slope).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
        let half = t_quantile(good.len() - 1) * sd / k.sqrt();
        (slope - half, slope + half)
    } else {
        (f64::NAN, f64::NAN)
    };
    let points = values.iter().flatten().filter(|&&v| usable(v)).count();
    Some(Slope {
        slope,
        lo,
        hi,
        widths: values
            .iter()
            .filter(|r| r.iter().any(|&v| usable(v)))
            .count(),
        n_seeds: good.len(),
        points,
        partial: points < widths.len() * n_seeds,
        seed_slopes,
    })
}

/// The measured verdict for an interval against a flatness tolerance τ: `grows` if the whole interval is above τ,
/// `shrinks` if below −τ, `flat` if inside [−τ, τ], `unclear` otherwise, and `no_interval` without an interval.
pub fn verdict(s: &Slope, tol: f64) -> Verdict {
    if !s.has_interval() {
        Verdict::NoInterval
    } else if s.lo > tol {
        Verdict::Grows
    } else if s.hi < -tol {
        Verdict::Shrinks
    } else if s.lo >= -tol && s.hi <= tol {
        Verdict::Flat
    } else {
        Verdict::Unclear
    }
}
