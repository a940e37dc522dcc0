//! Width exponents: the log-log OLS slope of a quantity against width, with a bootstrap confidence interval over
//! seeds.
//!
//! For widths $n_1 < \dots < n_k$ and seeds $s_1, \dots, s_S$, the point estimate fits
//! $\log \bar v(n) = a + p \log n$ where $\bar v(n)$ is the geometric mean over seeds (THEORY §5.0). The interval
//! resamples the seeds with replacement (the same resample at every width, since a seed fixes the data and the
//! adapter draw), refits, and takes the 2.5% and 97.5% quantiles of $p$. Non-positive or non-finite values make a
//! point unusable: a width with none left is dropped, and fewer than two widths give no fit.

use crate::names::named_enum;
use crate::rng::SeedRng;

/// What a fitted exponent says on its own, at a flatness tolerance τ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is above τ.
    Grows,
    /// The whole interval is below −τ.
    Shrinks,
    /// The whole interval is inside [−τ, τ].
    Flat,
    /// None of these.
    Unclear,
}

impl Verdict {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Grows => "grows",
            Verdict::Shrinks => "shrinks",
            Verdict::Flat => "flat",
            Verdict::Unclear => "unclear",
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
        Verdict::Unclear
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
}

impl Agreement {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Agreement::Agree => "agree",
            Agreement::Near => "near",
            Agreement::Disagree => "disagree",
        }
    }

    /// `agree` if `predicted` ∈ [lo, hi], `near` if within `tol` of it, else `disagree`.
    pub fn of(predicted: f64, lo: f64, hi: f64, tol: f64) -> Agreement {
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
    [Agreement::Agree, Agreement::Near, Agreement::Disagree]
);

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
pub fn verdict(s: &Slope, tol: f64) -> Verdict {
    if s.lo > tol {
        Verdict::Grows
    } else if s.hi < -tol {
        Verdict::Shrinks
    } else if s.lo >= -tol && s.hi <= tol {
        Verdict::Flat
    } else {
        Verdict::Unclear
    }
}
