//! The adapter configuration a user edits: method, rank, α, scaling rule, initialisation, DoRA norm, ramp, and the
//! width-scaling knobs. Serialises to the TOML a study file holds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which adapter. Names are the ones used on the command line, in configs and in the safetensors `method` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Full fine-tuning: a dense trainable $\Delta W$, zero-initialised (the reference).
    Full,
    /// LoRA as in HF PEFT: $\Delta W = s\,BA$.
    Lora,
    /// DoRA as in HF PEFT: LoRA's update inside a per-output-row magnitude/direction split.
    Dora,
    /// SingLoRA: $\Delta W = s\,u\,A_{out}A_{in}^\top$ with one $A \in \mathbb R^{m\times r}$.
    Singlora,
    /// DoRA's magnitude/direction split around the SingLoRA update.
    SingloraDora,
}

impl Method {
    /// Every method, in a stable order.
    pub const ALL: [Method; 5] = [
        Method::Full,
        Method::Lora,
        Method::Dora,
        Method::Singlora,
        Method::SingloraDora,
    ];

    /// The name used everywhere outside the code.
    pub fn name(self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Lora => "lora",
            Method::Dora => "dora",
            Method::Singlora => "singlora",
            Method::SingloraDora => "singlora_dora",
        }
    }

    /// Whether the update carries DoRA's magnitude vector.
    pub fn has_magnitude(self) -> bool {
        matches!(self, Method::Dora | Method::SingloraDora)
    }

    /// Whether the update is SingLoRA's symmetric one.
    pub fn is_singlora(self) -> bool {
        matches!(self, Method::Singlora | Method::SingloraDora)
    }

    /// Whether the update is LoRA's B·A.
    pub fn is_lora(self) -> bool {
        matches!(self, Method::Lora | Method::Dora)
    }

    /// The initialisation used when the config names none.
    pub fn default_init(self) -> Init {
        match self {
            Method::Full => Init::Zeros,
            Method::Lora | Method::Dora => Init::KaimingUniform,
            Method::Singlora | Method::SingloraDora => Init::WidthAware,
        }
    }
}

/// The multiplier's rank rule: $s = \alpha/r$ (LoRA, SingLoRA paper) or $s = \alpha/\sqrt r$ (rsLoRA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scaling {
    /// $s = \alpha / r$.
    #[default]
    AlphaOverR,
    /// $s = \alpha / \sqrt r$ (rsLoRA, PEFT's `use_rslora=True`).
    AlphaOverSqrtR,
}

impl Scaling {
    /// The name used in configs and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Scaling::AlphaOverR => "alpha_over_r",
            Scaling::AlphaOverSqrtR => "alpha_over_sqrt_r",
        }
    }

    /// $s(\alpha, r)$.
    pub fn scale(self, alpha: f64, rank: usize) -> f64 {
        match self {
            Scaling::AlphaOverR => alpha / rank as f64,
            Scaling::AlphaOverSqrtR => alpha / (rank as f64).sqrt(),
        }
    }
}

/// How DoRA differentiates through the row norm $\nu = \lVert W_0 + \Delta W \rVert_{\text{row}}$.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DoraNorm {
    /// The norm is a constant in the backward pass (DoRA §4.3, PEFT's default).
    #[default]
    Detached,
    /// The exact gradient, including the projection term.
    Full,
}

impl DoraNorm {
    /// The name used in configs and metadata.
    pub fn name(self) -> &'static str {
        match self {
            DoraNorm::Detached => "detached",
            DoraNorm::Full => "full",
        }
    }
}

/// Initialisation of the random factor (LoRA's A, SingLoRA's A). Every option names its fan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros (full fine-tuning's ΔW, LoRA's B).
    Zeros,
    /// PEFT's default for LoRA's A ∈ R^{r×d_in}: `kaiming_uniform_(a=√5)` with fan_in = d_in, i.e.
    /// $A_{ij} \sim \mathcal U(\pm 1/\sqrt{d_{in}})$, variance $1/(3d_{in})$.
    KaimingUniform,
    /// PEFT's `init_lora_weights="gaussian"`: $A_{ij} \sim \mathcal N(0, 1/r^2)$ (std 1/r, width-independent).
    PeftGaussian,
    /// SingLoRA "width-aware": $A_{ij} \sim \mathcal N(0, 1/m)$, $m = \max(d_{in}, d_{out})$ (β = 1/2).
    WidthAware,
    /// What public SingLoRA code does: `kaiming_uniform_(a=√5)` on the (m, r) tensor, fan_in = r, so
    /// $A_{ij} \sim \mathcal U(\pm 1/\sqrt r)$, width-independent (bug B2 when used unknowingly).
    KaimingR,
    /// $\mathcal N(0, (\sigma_0\, n^{-\beta})^2)$ with an explicit std and width exponent; n is the config's width.
    Gaussian {
        /// $\sigma_0$.
        std: f64,
        /// $\beta$.
        beta: f64,
    },
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zeros => write!(f, "zeros"),
            Init::KaimingUniform => write!(f, "kaiming_uniform"),
            Init::PeftGaussian => write!(f, "peft_gaussian"),
            Init::WidthAware => write!(f, "width_aware"),
            Init::KaimingR => write!(f, "kaiming_r"),
            Init::Gaussian { std, beta } => write!(f, "gaussian(std={std},beta={beta})"),
        }
    }
}

impl FromStr for Init {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
            "init",
            s,
            "zeros, kaiming_uniform, peft_gaussian, width_aware, kaiming_r, or gaussian(std=S,beta=B)",
        )
        };
        let t = s.trim();
        Ok(match t {
            "zeros" => Init::Zeros,
            "kaiming_uniform" => Init::KaimingUniform,
            "peft_gaussian" => Init::PeftGaussian,
            "width_aware" => Init::WidthAware,
            "kaiming_r" => Init::KaimingR,
            _ => {
                let inner = t
                    .strip_prefix("gaussian(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(bad)?;
                let (mut std, mut beta) = (None, None);
                for kv in inner.split(',') {
                    let (k, v) = kv.split_once('=').ok_or_else(bad)?;
                    let v: f64 = v.trim().parse().map_err(|_| bad())?;
                    match k.trim() {
                        "std" => std = Some(v),
                        "beta" => beta = Some(v),
                        _ => return Err(bad()),
                    }
                }
                let std = std.ok_or_else(bad)?;
                if !(std.is_finite() && std >= 0.0) {
                    return Err(Error::invalid("init.std", std, "a finite number ≥ 0"));
                }
                Init::Gaussian {
                    std,
                    beta: beta.unwrap_or(0.0),
                }
            }
        })
    }
}

pub(crate) use crate::names::{named_enum, serde_via_str};

named_enum!(
    Method,
    "method",
    [
        Method::Full,
        Method::Lora,
        Method::Dora,
        Method::Singlora,
        Method::SingloraDora
    ]
);
named_enum!(
    Scaling,
    "scaling",
    [Scaling::AlphaOverR, Scaling::AlphaOverSqrtR]
);
named_enum!(DoraNorm, "dora_norm", [DoraNorm::Detached, DoraNorm::Full]);
serde_via_str!(Init);

/// SingLoRA's ramp $u(t) = \min(t/T, 1)$: a pure function of the optimiser step $t$ (never of forward calls).
///
/// `T = 0` means no ramp ($u \equiv 1$). `u_min` is an optional floor (the fix proposed for low-precision collapse,
/// bug B12); it is 0 by default, so $u(0) = 0$ and the adapted model starts exactly at the base model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Ramp {
    /// T, the number of optimiser steps over which u rises from 0 to 1 (0: no ramp).
    pub steps: u64,
    /// Floor on u (default 0).
    pub u_min: f64,
}

impl Ramp {
    /// $u(t) = \max(u_{min}, \min(t/T, 1))$, with $u \equiv 1$ when $T = 0$.
    pub fn u(&self, step: u64) -> f64 {
        if self.steps == 0 {
            1.0
        } else {
            (step as f64 / self.steps as f64).min(1.0).max(self.u_min)
        }
    }
}

/// Everything that defines one adapter on one linear map. Defaults reproduce PEFT's LoRA (r = 8, α = 8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterConfig {
    /// Which adapter (default `lora`).
    pub method: Method,
    /// Rank r (default 8). Must satisfy 1 ≤ r ≤ min(d_in, d_out) for LoRA-type updates and r ≤ m for SingLoRA.
    pub rank: usize,
    /// α (default 8).
    pub alpha: f64,
    /// Rank rule of the multiplier (default α/r).
    pub scaling: Scaling,
    /// Initialisation of the random factor; `None` takes the method's default (PEFT kaiming-uniform for LoRA/DoRA,
    /// width-aware for SingLoRA).
    pub init: Option<Init>,
    /// Initialisation of LoRA's B (default zeros, PEFT). A non-zero B makes LoRA start away from the base model.
    pub init_b: Init,
    /// DoRA's norm gradient (default detached, as PEFT).
    pub dora_norm: DoraNorm,
    /// Floor ε on DoRA's row norms, so zero rows of W0 never give 0/0 (bug B17). Default 1e-12.
    pub dora_eps: f64,
    /// The ramp u(t) (default: none, u ≡ 1).
    pub ramp: Ramp,
    /// The width n used by the width knobs; `None` means m = max(d_in, d_out).
    pub width: Option<usize>,
    /// γ: the multiplier is $s\,n^{-\gamma}$ (default 0, the paper's choice).
    pub multiplier_exponent: f64,
    /// λ, SingLoRA's LoRA+-style role split (THEORY O10): A steps along $\lambda\,\mathrm{pad}(G_WA_{in}) +
    /// \mathrm{pad}(G_W^\top A_{out})$, the output role weighted λ against the input role (LoRA+'s $\eta_B/\eta_A$).
    /// Default 1, the gradient; SingLoRA methods only. A study sets it per arm with `loraplus_ratio`.
    #[serde(skip_serializing_if = "is_one")]
    pub role_ratio: f64,
}

/// Whether a ratio is 1 (left out of serialised configs, so configs written before the field existed still match).
fn is_one(x: &f64) -> bool {
    *x == 1.0
}

impl Default for AdapterConfig {
    /// PEFT's LoRA: r = 8, α = 8, α/r, kaiming-uniform A, zero B, no ramp (see [`AdapterConfig::new`]).
    fn default() -> Self {
        Self::new(Method::Lora)
    }
}

impl AdapterConfig {
    /// A config for `method` with every other field at its documented default.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            rank: 8,
            alpha: 8.0,
            scaling: Scaling::default(),
            init: None,
            init_b: Init::Zeros,
            dora_norm: DoraNorm::default(),
            dora_eps: 1e-12,
            ramp: Ramp::default(),
            width: None,
            multiplier_exponent: 0.0,
            role_ratio: 1.0,
        }
    }

    /// Sets the rank and α.
    pub fn rank_alpha(mut self, rank: usize, alpha: f64) -> Self {
        self.rank = rank;
        self.alpha = alpha;
        self
    }

    /// Sets the scaling rule.
    pub fn scaling(mut self, scaling: Scaling) -> Self {
        self.scaling = scaling;
        self
    }

    /// Sets the initialisation of the random factor.
    pub fn init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// Sets DoRA's norm gradient.
    pub fn dora_norm(mut self, norm: DoraNorm) -> Self {
        self.dora_norm = norm;
        self
    }

    /// The initialisation actually used.
    pub fn effective_init(&self) -> Init {
        self.init.unwrap_or(self.method.default_init())
    }

    /// The width n of the width knobs for a layer of this shape.
    pub fn knob_width(&self, d_in: usize, d_out: usize) -> usize {
        self.width.unwrap_or(d_in.max(d_out))
    }

    /// The multiplier $s = (\alpha/r \text{ or } \alpha/\sqrt r)\cdot n^{-\gamma}$ (1 for full fine-tuning).
    pub fn scale(&self, d_in: usize, d_out: usize) -> f64 {
        if self.method == Method::Full {
            return 1.0;
        }
        let n = self.knob_width(d_in, d_out) as f64;
        self.scaling.scale(self.alpha, self.rank) * n.powf(-self.multiplier_exponent)
    }

    /// `role_ratio` is a finite number > 0, and 1 unless the method is SingLoRA's.
    fn validate_role_ratio(&self) -> Result<()> {
        let r = self.role_ratio;
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::invalid("role_ratio", r, "a finite number > 0"));
        }
        if r != 1.0 && !self.method.is_singlora() {
            return Err(Error::invalid(
                "role_ratio",
                r,
                &format!(
                    "1 for method {} (the role split is SingLoRA's; LoRA's ratio is optimizer.groups.loraplus_ratio)",
                    self.method
                ),
            ));
        }
        Ok(())
    }

    /// Checks the config against a layer shape; every error names the field, its value and what is accepted.
    pub fn validate(&self, d_in: usize, d_out: usize) -> Result<()> {
        if d_in == 0 {
            return Err(Error::invalid("d_in", d_in, "a positive integer"));
        }
        if d_out == 0 {
            return Err(Error::invalid("d_out", d_out, "a positive integer"));
        }
        if self.method != Method::Full {
            self.validate_rank(d_in, d_out)?;
        }
        self.validate_numbers()?;
        self.validate_role_ratio()?;
        self.validate_inits()
    }

    /// The rank fits the layer (at most min(d_in, d_out) for LoRA's factors, max(d_in, d_out) for SingLoRA's one
    /// matrix) and α is a positive number.
    fn validate_rank(&self, d_in: usize, d_out: usize) -> Result<()> {
        let (max_rank, what) = if self.method.is_singlora() {
            (d_in.max(d_out), "max(d_in, d_out)")
        } else {
            (d_in.min(d_out), "min(d_in, d_out)")
        };
        if self.rank == 0 || self.rank > max_rank {
            return Err(Error::invalid(
                "rank",
                self.rank,
                &format!("an integer in 1..={max_rank} ({what} for this {d_out}x{d_in} layer)"),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::invalid("alpha", self.alpha, "a finite number > 0"));
        }
        Ok(())
    }

    /// The width knobs, DoRA's ε floor and the ramp's floor are numbers in their ranges.
    fn validate_numbers(&self) -> Result<()> {
        if !self.multiplier_exponent.is_finite() {
            return Err(Error::invalid(
                "multiplier_exponent",
                self.multiplier_exponent,
                "a finite number",
            ));
        }
        if !(self.dora_eps.is_finite() && self.dora_eps > 0.0) {
            return Err(Error::invalid(
                "dora_eps",
                self.dora_eps,
                "a finite number > 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.ramp.u_min) {
            return Err(Error::invalid(
                "ramp.u_min",
                self.ramp.u_min,
                "a number in [0, 1]",
            ));
        }
        if self.width == Some(0) {
            return Err(Error::invalid("width", 0, "a positive integer"));
        }
        Ok(())
    }

    /// The (effective) init is one the method's tensors can take, and `init_b` one LoRA's B can.
    fn validate_inits(&self) -> Result<()> {
        let init = self.effective_init();
        let ok = match self.method {
            Method::Full => init == Init::Zeros,
            Method::Lora | Method::Dora => matches!(
                init,
                Init::KaimingUniform | Init::PeftGaussian | Init::Gaussian { .. } | Init::Zeros
            ),
            Method::Singlora | Method::SingloraDora => matches!(
                init,
                Init::WidthAware | Init::KaimingR | Init::Gaussian { .. } | Init::Zeros
            ),
        };
        if !ok {
            let accepted = match self.method {
                Method::Full => "zeros",
                Method::Lora | Method::Dora => {
                    "kaiming_uniform, peft_gaussian, gaussian(std=S,beta=B) or zeros"
                }
                _ => "width_aware, kaiming_r, gaussian(std=S,beta=B) or zeros",
            };
            return Err(Error::invalid(
                "init",
                init,
                &format!("for method {}: {accepted}", self.method),
            ));
        }
        if !matches!(self.init_b, Init::Zeros | Init::Gaussian { .. }) {
            return Err(Error::invalid(
                "init_b",
                self.init_b,
                "zeros or gaussian(std=S,beta=B)",
            ));
        }
        Ok(())
    }
}
