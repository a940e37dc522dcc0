//! Predicted width exponents, derived by formula from a study's configuration (THEORY §5). Nothing here is a lookup
//! of P1–P18: each exponent is the maximum over the terms of the per-step decomposition, every term's exponent
//! computed from the scaling knobs. The engine covers the **first step** (t = 1) and the initial state (t = 0) of a
//! square hidden layer; the balanced regime and the infinite-width limit are not implemented yet (issue 5).
//!
//! Knobs: width n; init std of the random factor $n^{-\beta}$ (width-aware and PEFT kaiming: β = 1/2; kaiming-r and
//! PEFT gaussian: β = 0; `gaussian(std, beta)`: β); multiplier $s\,n^{-\gamma}$; learning rates $\eta\,n^{-c}$ per role;
//! upstream gradient coordinates $n^{-\rho}$ (ρ = 1 for a μP readout, 1/2 for a standard one); the adapted layer's
//! input has Θ(1) coordinates. Derivations (sign-Adam at step 1 is exact with bias correction):
//!
//! SingLoRA, $\Delta z_1 = s n^{-\gamma}(T_1 + T_2 + T_3)$:
//! - Adam: $\Delta A$ coords $n^{-c}$, aligned with $g$ and $h$; $A^\top h \sim n^{1/2-\beta}$, so
//!   $T_1 \sim n^{1/2-\beta-c}$, $T_2 = A(\Delta A^\top h) \sim n^{-\beta} n^{1-c}$, $T_3 \sim n^{1-2c}$.
//! - SGD: $\nabla_A = s[g(A^\top h)^\top + h(A^\top g)^\top]$, so $T_1 \sim n^{1-2\beta-c-\rho}$,
//!   $T_2 \sim n^{3/2-2\beta-\rho-c}$, $T_3 \sim n^{2-2\beta-2\rho-2c}$.
//!
//! LoRA with $B_0 = 0$: at step 1 only B moves ($\nabla_A = B^\top G_W = 0$), so $\Delta z_1 = \delta^2 = \Delta B\,(Ah)$
//! with $Ah \sim n^{1/2-\beta}$: Adam $n^{-c_B}\,n^{1/2-\beta}$; SGD $\Delta B = \eta\,g(Ah)^\top$ gives
//! $n^{-c_B-\rho}\,n^{1-2\beta}$.
//!
//! Initial state: SingLoRA's own output $s A_0A_0^\top h$ has off-diagonal coordinates $n^{-2\beta}\sqrt{rn}$ and a
//! diagonal part $n^{-2\beta}$, so `update_out_rms` at t = 0 $\sim n^{\max(1/2-2\beta, -2\beta)-\gamma}$; the bottleneck
//! $A^\top h$ (SingLoRA) or $Ah$ (LoRA) $\sim n^{1/2-\beta}$.
//!
//! Stable rates (THEORY §5.2 canonical rescaling): Adam $c^* = (1-\gamma)/2$ for SingLoRA at β = 1/2; SGD
//! $c^* = 1-\rho-\gamma$.

pub mod limit;

use serde::Serialize;

use crate::adapters::Role;
use crate::adapters::{AdapterConfig, Init, Method};
use crate::models::Readout;
use crate::optim::{Groups, Rule};

/// What the theory needs to know about a run.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The adapter.
    pub adapter: AdapterConfig,
    /// Optimiser rule.
    pub rule: Rule,
    /// Rate groups (exponents per role, LoRA+ ratio).
    pub groups: Groups,
    /// Readout scale, which sets ρ.
    pub readout: Readout,
}

/// A predicted exponent with the terms it is the maximum of.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Quantity (probe name).
    pub quantity: &'static str,
    /// Step.
    pub step: u64,
    /// The exponent.
    pub exponent: f64,
    /// How it arises, e.g. `max(T1 -1.00, T2 -0.50, T3 -1.00)`.
    pub derivation: String,
}

impl Setting {
    /// ρ, the exponent of the upstream gradient's coordinates.
    pub fn rho(&self) -> f64 {
        match self.readout {
            Readout::Mup => 1.0,
            Readout::Standard => 0.5,
        }
    }

    /// β of the random factor, if the init has a power-law std.
    pub fn beta(&self) -> Option<f64> {
        match self.adapter.effective_init() {
            Init::WidthAware | Init::KaimingUniform => Some(0.5),
            Init::KaimingR | Init::PeftGaussian => Some(0.0),
            Init::Gaussian { beta, .. } => Some(beta),
            Init::Zeros => None,
        }
    }

    fn gamma(&self) -> f64 {
        self.adapter.multiplier_exponent
    }

    fn c(&self, role: Role) -> f64 {
        self.groups.exponent(role)
    }

    /// Whether the rule is Adam-like (normalised: Adam, AdamW, sign-SGD) rather than SGD. Momentum does not change
    /// the first step; the balanced regime is not covered yet.
    fn adam_like(&self) -> bool {
        !matches!(self.rule, Rule::Sgd { .. })
    }

    /// Every prediction the engine can make for this setting.
    pub fn predictions(&self) -> Vec<Prediction> {
        let mut out = Vec::new();
        let Some(beta) = self.beta() else {
            return out;
        };
        let adam = self.adam_like();
        let (g, rho) = (self.gamma(), self.rho());
        let fmt = |terms: &[(&str, f64)]| {
            let parts: Vec<String> = terms.iter().map(|(n, e)| format!("{n} {e:+.2}")).collect();
            format!("max({})", parts.join(", "))
        };
        let max =
            |terms: &[(&str, f64)]| terms.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max);
        match self.adapter.method {
            Method::Singlora => {
                let c = self.c(Role::SingleA);
                let terms: Vec<(&str, f64)> = if adam {
                    vec![
                        ("T1", 0.5 - beta - c - g),
                        ("T2", 1.0 - c - beta - g),
                        ("T3", 1.0 - 2.0 * c - g),
                    ]
                } else {
                    vec![
                        ("T1", 1.0 - 2.0 * beta - c - rho - g),
                        ("T2", 1.5 - 2.0 * beta - rho - c - g),
                        ("T3", 2.0 - 2.0 * beta - 2.0 * rho - 2.0 * c - g),
                    ]
                };
                out.push(Prediction {
                    quantity: "dz_rms",
                    step: 1,
                    exponent: max(&terms),
                    derivation: fmt(&terms),
                });
                let init = [
                    ("off-diagonal", 0.5 - 2.0 * beta - g),
                    ("diagonal", -2.0 * beta - g),
                ];
                out.push(Prediction {
                    quantity: "update_out_rms",
                    step: 0,
                    exponent: max(&init),
                    derivation: fmt(&init),
                });
                out.push(Prediction {
                    quantity: "bottleneck_rms",
                    step: 0,
                    exponent: 0.5 - beta,
                    derivation: format!("Aᵀh: {:+.2}", 0.5 - beta),
                });
            }
            Method::Lora if self.adapter.init_b == Init::Zeros => {
                let cb = self.c(Role::LoraB);
                let e = if adam {
                    -cb + 0.5 - beta - g
                } else {
                    -cb - rho + 1.0 - 2.0 * beta - g
                };
                out.push(Prediction {
                    quantity: "dz_rms",
                    step: 1,
                    exponent: e,
                    derivation: format!("δ² = ΔB·(Ah) only (B₀ = 0): {e:+.2}"),
                });
                out.push(Prediction {
                    quantity: "bottleneck_rms",
                    step: 0,
                    exponent: 0.5 - beta,
                    derivation: format!("Ah: {:+.2}", 0.5 - beta),
                });
            }
            _ => {}
        }
        out
    }

    /// The stable learning-rate exponent c* of the single shared rate, where the engine knows it.
    pub fn stable_lr_exponent(&self) -> Option<(f64, &'static str)> {
        let adam = self.adam_like();
        let g = self.gamma();
        match (self.adapter.method, adam) {
            (Method::Singlora, true) if self.beta() == Some(0.5) => {
                Some(((1.0 - g) / 2.0, "Adam: c* = (1 − γ)/2"))
            }
            (Method::Singlora | Method::Lora, false) => Some((
                1.0 - self.rho() - g,
                "SGD: c* = 1 − ρ − γ (with a Θ(ln n) escape delay)",
            )),
            (Method::Lora, true) => Some((
                (1.0 - g) / 2.0,
                "Adam, shared rate: c* = (1 − γ)/2 at the layer output (S, NV; not S+)",
            )),
            _ => None,
        }
    }
}

/// How a measured interval compares with a prediction: `agree` if the prediction lies in the 95% interval, `near` if
/// within `tol` of it, else `disagree`.
pub fn agreement(predicted: f64, lo: f64, hi: f64, tol: f64) -> &'static str {
    if predicted >= lo && predicted <= hi {
        "agree"
    } else if predicted >= lo - tol && predicted <= hi + tol {
        "near"
    } else {
        "disagree"
    }
}
