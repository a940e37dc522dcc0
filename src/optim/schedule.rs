//! Learning-rate schedules: the factor $\lambda(t)$ multiplying every group's rate at optimiser step $t = 1, 2, \dots$

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// $\lambda(t) = 1$.
    #[default]
    Constant,
    /// $\lambda(t) = \min(t/W, 1)$.
    LinearWarmup {
        /// W, the warm-up length in steps.
        warmup: u64,
    },
    /// Linear warm-up over W steps, then cosine decay to `min_ratio` at step `total`:
    /// $\lambda(t) = \rho + (1-\rho)\tfrac12\bigl(1+\cos(\pi\,\tfrac{t-W}{T-W})\bigr)$, constant after T.
    Cosine {
        /// W (may be 0).
        #[serde(default)]
        warmup: u64,
        /// T, the step at which the decay ends.
        total: u64,
        /// ρ, the final fraction of the rate (default 0).
        #[serde(default)]
        min_ratio: f64,
    },
}

impl Schedule {
    /// $\lambda(t)$ for the update taken at step `t` (1-based).
    pub fn factor(&self, t: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::LinearWarmup { warmup } => warm(t, warmup),
            Schedule::Cosine {
                warmup,
                total,
                min_ratio,
            } => {
                if t <= warmup {
                    warm(t, warmup)
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let progress = ((t - warmup) as f64 / span).min(1.0);
                    min_ratio
                        + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        }
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if let Schedule::Cosine {
            warmup,
            total,
            min_ratio,
        } = *self
        {
            if total <= warmup {
                return Err(Error::invalid(
                    "schedule.total",
                    total,
                    &format!("an integer > schedule.warmup = {warmup}"),
                ));
            }
            if !(0.0..=1.0).contains(&min_ratio) {
                return Err(Error::invalid(
                    "schedule.min_ratio",
                    min_ratio,
                    "a number in [0, 1]",
                ));
            }
        }
        Ok(())
    }
}

fn warm(t: u64, warmup: u64) -> f64 {
    if warmup == 0 {
        1.0
    } else {
        (t as f64 / warmup as f64).min(1.0)
    }
}
