//! Optimisers: SGD (momentum, weight decay), Adam and AdamW (bias-corrected), sign-SGD, with parameter groups and
//! learning-rate schedules.
//!
//! An optimiser updates a list of [`Slot`]s, each a flat parameter with its gradient and its own learning-rate
//! factor. The factor is where LoRA+ (B's rate = ratio × A's rate) and width scaling ($\eta\,n^{-c}$ per tensor group)
//! enter; [`Groups`] computes it from a tensor's [`Role`]. The step counter lives here and only [`Optimizer::step`]
//! advances it, so SingLoRA's ramp $u = \min(t/T, 1)$, read from [`Optimizer::steps_taken`], counts optimiser steps,
//! never forward calls or accumulated micro-batches (bug B3).
//!
//! Update rules (PyTorch's `torch.optim` conventions, $g$ the gradient, $\eta_t = \eta\,\lambda(t)\,f_{slot}$):
//! - SGD: $g \mathrel{+}= \mathrm{wd}\,p$; $b = \mu b + g$ ($b_1 = g$); $p \mathrel{-}= \eta_t b$.
//! - Adam: $g \mathrel{+}= \mathrm{wd}\,p$; AdamW instead $p \mathrel{-}= \eta_t\,\mathrm{wd}\,p$. Then
//!   $m = \beta_1 m + (1-\beta_1)g$, $v = \beta_2 v + (1-\beta_2)g^2$,
//!   $p \mathrel{-}= \eta_t\,\hat m/(\sqrt{\hat v} + \varepsilon)$ with $\hat m = m/(1-\beta_1^t)$,
//!   $\hat v = v/(1-\beta_2^t)$.
//! - sign-SGD: $p \mathrel{-}= \eta_t(\mathrm{sign}(g) + \mathrm{wd}\,p)$ — Adam's $\varepsilon \to 0$ limit at step 1.

mod adam;
pub mod schedule;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use schedule::Schedule;

use ndarray::{ArrayD, ArrayViewMutD};

use crate::adapters::{AdaptedLinear, Role};
use crate::error::{Error, Result};
use crate::scalar::{self, Scalar};

/// The update rule and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Stochastic gradient descent.
    Sgd {
        /// μ (default 0).
        #[serde(default)]
        momentum: f64,
        /// L2 weight decay added to the gradient (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// β1 (default 0.9).
        #[serde(default = "beta1")]
        beta1: f64,
        /// β2 (default 0.999).
        #[serde(default = "beta2")]
        beta2: f64,
        /// ε (default 1e-8).
        #[serde(default = "eps")]
        eps: f64,
        /// L2 weight decay (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay.
    AdamW {
        /// β1 (default 0.9).
        #[serde(default = "beta1")]
        beta1: f64,
        /// β2 (default 0.999).
        #[serde(default = "beta2")]
        beta2: f64,
        /// ε (default 1e-8).
        #[serde(default = "eps")]
        eps: f64,
        /// Decoupled weight decay (default 0.01, PyTorch's).
        #[serde(default = "adamw_wd")]
        weight_decay: f64,
    },
    /// sign-SGD: Adam idealised as $\varepsilon \to 0$ without moments.
    SignSgd {
        /// Decoupled weight decay (default 0).
        #[serde(default)]
        weight_decay: f64,
    },
}

/// $\mathrm{sign}(x)$ with $\mathrm{sign}(0) = 0$: the direction of a sign-SGD step (a zero gradient does not move).
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn adamw_wd() -> f64 {
    0.01
}

impl Rule {
    /// Plain SGD.
    pub fn sgd() -> Self {
        Rule::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        Rule::Adam {
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            weight_decay: 0.0,
        }
    }
    /// AdamW with PyTorch's defaults.
    pub fn adamw() -> Self {
        Rule::AdamW {
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            weight_decay: adamw_wd(),
        }
    }

    /// The name used in configs and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Sgd { .. } => "sgd",
            Rule::Adam { .. } => "adam",
            Rule::AdamW { .. } => "adamw",
            Rule::SignSgd { .. } => "sign_sgd",
        }
    }

    /// The default rule of a name (`sgd`, `adam`, `adamw`, `sign_sgd`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim() {
            "sgd" => Rule::sgd(),
            "adam" => Rule::adam(),
            "adamw" => Rule::adamw(),
            "sign_sgd" => Rule::SignSgd { weight_decay: 0.0 },
            _ => {
                return Err(Error::invalid(
                    "optimizer",
                    name,
                    "one of sgd, adam, adamw, sign_sgd",
                ))
            }
        })
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let check = |field: &str, v: f64, lo: f64, hi: f64, open_hi: bool| -> Result<()> {
            let ok = v.is_finite() && v >= lo && if open_hi { v < hi } else { v <= hi };
            if ok {
                Ok(())
            } else {
                let bracket = if open_hi { ")" } else { "]" };
                Err(Error::invalid(
                    field,
                    v,
                    &format!("a number in [{lo}, {hi}{bracket}"),
                ))
            }
        };
        match *self {
            Rule::Sgd {
                momentum,
                weight_decay,
            } => {
                check("optimizer.momentum", momentum, 0.0, 1.0, true)?;
                check("optimizer.weight_decay", weight_decay, 0.0, f64::MAX, false)
            }
            Rule::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Rule::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                check("optimizer.beta1", beta1, 0.0, 1.0, true)?;
                check("optimizer.beta2", beta2, 0.0, 1.0, true)?;
                check("optimizer.eps", eps, 0.0, f64::MAX, false)?;
                check("optimizer.weight_decay", weight_decay, 0.0, f64::MAX, false)
            }
            Rule::SignSgd { weight_decay } => {
                check("optimizer.weight_decay", weight_decay, 0.0, f64::MAX, false)
            }
        }
    }
}

/// How learning rates differ between tensor roles: LoRA+'s ratio and a width exponent per role.
///
/// The rate of a tensor of role ρ is $\eta\cdot(\text{ratio if }\rho\in B\text{'s group})\cdot n^{-c_\rho}$.
/// B's group is `lora_b`; with `one_d_in_b` (default **true**, as PEFT's `create_loraplus_optimizer`, which puts every
/// 1-D parameter in B's group, bug B16) it also holds biases and DoRA magnitudes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Groups {
    /// LoRA+ ratio $\eta_B/\eta_A$ (default 1: plain LoRA, one shared rate).
    pub loraplus_ratio: f64,
    /// Whether 1-D tensors (biases, DoRA magnitudes) join B's group (default true, as PEFT).
    pub one_d_in_b: bool,
    /// Width exponent $c$ of the learning rate, per role name (`lora_a`, `lora_b`, `singlora_a`, `dense`,
    /// `magnitude`, `bias`, or `default` for every role not named). Default: empty (c = 0).
    pub lr_exponent: BTreeMap<String, f64>,
}

impl Default for Groups {
    /// One shared rate: ratio 1, PEFT's 1-D switch on, no width exponents.
    fn default() -> Self {
        Self {
            loraplus_ratio: 1.0,
            one_d_in_b: true,
            lr_exponent: BTreeMap::new(),
        }
    }
}

impl Groups {
    /// Whether a role trains in LoRA+'s B group.
    pub fn in_b_group(&self, role: Role) -> bool {
        role == Role::LoraB || (self.one_d_in_b && role.is_one_dimensional())
    }

    /// The width exponent $c$ of a role.
    pub fn exponent(&self, role: Role) -> f64 {
        self.lr_exponent
            .get(role.name())
            .or_else(|| self.lr_exponent.get("default"))
            .copied()
            .unwrap_or(0.0)
    }

    /// The factor multiplying the base rate for a tensor of `role` in a network of width `n`.
    pub fn factor(&self, role: Role, n: usize) -> f64 {
        let ratio = if self.in_b_group(role) {
            self.loraplus_ratio
        } else {
            1.0
        };
        ratio * (n as f64).powf(-self.exponent(role))
    }

    /// [`Groups::factor`] of every tensor, given their roles in order.
    pub fn factors(&self, roles: impl IntoIterator<Item = Role>, n: usize) -> Vec<f64> {
        roles.into_iter().map(|role| self.factor(role, n)).collect()
    }

    /// The rate law in words: `0.05`, `0.05·n^-0.5`, `0.05·n^5`, with per-role exponents and the LoRA+ ratio.
    pub fn rate_law(&self, lr: f64) -> String {
        let power = |c: f64| {
            if c == 0.0 {
                String::new()
            } else {
                format!("·n^{}", -c)
            }
        };
        let mut s = match (self.lr_exponent.len(), self.lr_exponent.get("default")) {
            (0, _) => format!("{lr}"),
            (1, Some(&c)) => format!("{lr}{}", power(c)),
            _ => {
                let roles: Vec<String> = self
                    .lr_exponent
                    .iter()
                    .map(|(k, c)| format!("{k}: {lr}{}", power(*c)))
                    .collect();
                roles.join(", ")
            }
        };
        if self.loraplus_ratio != 1.0 {
            s += &format!(" (LoRA+ ratio η_B/η_A = {})", self.loraplus_ratio);
        }
        s
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if !(self.loraplus_ratio.is_finite() && self.loraplus_ratio > 0.0) {
            return Err(Error::invalid(
                "loraplus_ratio",
                self.loraplus_ratio,
                "a finite number > 0",
            ));
        }
        const ROLES: [&str; 7] = [
            "lora_a",
            "lora_b",
            "singlora_a",
            "dense",
            "magnitude",
            "bias",
            "default",
        ];
        for (k, v) in &self.lr_exponent {
            if !ROLES.contains(&k.as_str()) {
                return Err(Error::invalid(
                    "lr_exponent key",
                    k,
                    &format!("one of {}", ROLES.join(", ")),
                ));
            }
            if !v.is_finite() {
                return Err(Error::invalid(
                    &format!("lr_exponent.{k}"),
                    v,
                    "a finite number",
                ));
            }
        }
        Ok(())
    }
}

/// A complete optimiser configuration (`[optimizer]` in a study file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// The update rule.
    pub rule: Rule,
    /// Base learning rate η (must be > 0).
    pub lr: f64,
    /// Schedule (default constant).
    pub schedule: Schedule,
    /// Per-role rates.
    pub groups: Groups,
}

impl Default for OptimizerConfig {
    /// PyTorch's Adam at η = 10⁻³, constant schedule, one shared rate.
    fn default() -> Self {
        Self::new(Rule::adam(), 1e-3)
    }
}

impl OptimizerConfig {
    /// `rule` at rate `lr`, constant schedule, one shared group.
    pub fn new(rule: Rule, lr: f64) -> Self {
        Self {
            rule,
            lr,
            schedule: Schedule::Constant,
            groups: Groups::default(),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        self.rule.validate()?;
        self.schedule.validate()?;
        self.groups.validate()
    }

    /// Builds the optimiser.
    pub fn init(&self) -> Result<Optimizer> {
        self.validate()?;
        Ok(Optimizer {
            config: self.clone(),
            steps: 0,
            state: Vec::new(),
        })
    }
}

/// One parameter handed to [`Optimizer::step`]: its values, its gradient and its rate factor.
pub struct Slot<'a, T: Scalar> {
    /// The parameter, flattened (contiguous).
    pub value: &'a mut [T],
    /// Its gradient, same length.
    pub grad: &'a [T],
    /// The factor on the base rate (from [`Groups::factor`]).
    pub lr_factor: f64,
}

/// One rule's element update at one step, with its constants resolved (the rate of the tensor, the step t).
#[derive(Clone, Copy, Debug)]
enum ElementUpdate {
    /// $g \leftarrow g + \lambda p$; $b \leftarrow \mu b + g$ (just $g$ at $t = 1$ or $\mu = 0$); $p \leftarrow p -
    /// \eta b$.
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        first_step: bool,
    },
    /// Adam and AdamW ([`adam`]).
    Adam(adam::AdamStep),
    /// $p \leftarrow p - \eta(\operatorname{sign} g + \lambda p)$.
    SignSgd { lr: f64, weight_decay: f64 },
}

impl ElementUpdate {
    /// The update of `rule` at step `t` for a tensor whose rate is `lr`.
    fn of(rule: &Rule, lr: f64, t: u64) -> Self {
        match *rule {
            Rule::Sgd {
                momentum,
                weight_decay,
            } => Self::Sgd {
                lr,
                momentum,
                weight_decay,
                first_step: t <= 1,
            },
            Rule::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Rule::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Self::Adam(adam::AdamStep {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                bc1: 1.0 - beta1.powi(t as i32),
                bc2: 1.0 - beta2.powi(t as i32),
                decoupled: matches!(rule, Rule::AdamW { .. }),
            }),
            Rule::SignSgd { weight_decay } => Self::SignSgd { lr, weight_decay },
        }
    }

    /// Scalar operations per element, for [`scalar::part_len`]: Adam about a dozen arithmetic operations, three
    /// divisions and a square root (and 44–56 bytes of memory traffic, the f64 moments included; `cargo bench --bench
    /// steps -- adam_full` measures the same time per weight in f32 and f64, so memory and the divider bound it about
    /// equally); SGD and sign-SGD a few.
    fn ops_per_element(&self) -> usize {
        match self {
            Self::Adam(_) => 16,
            Self::Sgd { .. } | Self::SignSgd { .. } => 4,
        }
    }

    /// The update of parameters `p` with gradients `g` and the moment buffers `first`, `second` (same lengths).
    fn apply<T: Scalar>(&self, p: &mut [T], g: &[T], first: &mut [f64], second: &mut [f64]) {
        match *self {
            Self::Sgd {
                lr,
                momentum,
                weight_decay,
                first_step,
            } => {
                for ((p, &g), b) in p.iter_mut().zip(g).zip(first.iter_mut()) {
                    let g = g.f64() + weight_decay * p.f64();
                    *b = if momentum > 0.0 && !first_step {
                        momentum * *b + g
                    } else {
                        g
                    };
                    *p = T::of(p.f64() - lr * *b);
                }
            }
            Self::Adam(ref h) => adam::update(h, p, g, first, second),
            Self::SignSgd { lr, weight_decay } => {
                for (p, &g) in p.iter_mut().zip(g) {
                    *p = T::of(p.f64() - lr * (sign(g.f64()) + weight_decay * p.f64()));
                }
            }
        }
    }
}

/// Per-slot moment buffers, kept in f64 whatever the parameter precision.
#[derive(Clone, Debug, Default)]
struct SlotState {
    first: Vec<f64>,
    second: Vec<f64>,
}

/// A stateful optimiser.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    steps: u64,
    state: Vec<SlotState>,
}

impl Optimizer {
    /// Number of completed optimiser steps $t$ (what SingLoRA's ramp reads).
    pub fn steps_taken(&self) -> u64 {
        self.steps
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The base rate of the next step, $\eta\,\lambda(t+1)$.
    pub fn current_lr(&self) -> f64 {
        self.config.lr * self.config.schedule.factor(self.steps + 1)
    }

    /// Applies one update to every slot and advances the step counter. Slots must come in the same order, with the
    /// same lengths, at every call.
    #[track_caller]
    pub fn step<T: Scalar>(&mut self, slots: &mut [Slot<'_, T>]) {
        if self.state.is_empty() {
            self.state = slots
                .iter()
                .map(|s| SlotState {
                    first: vec![0.0; s.value.len()],
                    second: vec![0.0; s.value.len()],
                })
                .collect();
        }
        assert_eq!(
            self.state.len(),
            slots.len(),
            "optimizer: {} slots, was {}",
            slots.len(),
            self.state.len()
        );
        self.steps += 1;
        let t = self.steps;
        let lr0 = self.current_lr_at(t);
        for (slot, st) in slots.iter_mut().zip(self.state.iter_mut()) {
            assert_eq!(
                slot.value.len(),
                slot.grad.len(),
                "optimizer: value and gradient lengths differ"
            );
            assert_eq!(
                slot.value.len(),
                st.first.len(),
                "optimizer: slot length changed between steps"
            );
            let update = ElementUpdate::of(&self.config.rule, lr0 * slot.lr_factor, t);
            // A large tensor (full fine-tuning's n × n weights) is split into contiguous parts over this thread's
            // product threads; every element is updated by the same code whatever part it falls in, so the result
            // does not depend on the thread count.
            let len = scalar::part_len(slot.value.len(), update.ops_per_element());
            let parts = slot
                .value
                .chunks_mut(len)
                .zip(slot.grad.chunks(len))
                .zip(st.first.chunks_mut(len))
                .zip(st.second.chunks_mut(len));
            scalar::for_each_part(parts, |(((p, g), first), second)| {
                update.apply(p, g, first, second)
            });
        }
    }

    /// One step on every trainable tensor of a layer, with each tensor's rate factor taken from the config's
    /// [`Groups`] at width `width`. `grads` are the layer's parameter gradients in [`AdaptedLinear::param_info`]
    /// order.
    pub fn step_layer<T: Scalar>(
        &mut self,
        layer: &mut AdaptedLinear<T>,
        grads: &[ArrayD<T>],
        width: usize,
    ) {
        let roles = layer.param_info().into_iter().map(|p| p.role);
        let factors = self.config.groups.factors(roles, width);
        self.step_views(layer.params_mut(), grads, &factors);
    }

    /// One step on parameter views with their gradients and rate factors (all in the same order).
    #[track_caller]
    pub fn step_views<T: Scalar>(
        &mut self,
        mut params: Vec<ArrayViewMutD<'_, T>>,
        grads: &[ArrayD<T>],
        factors: &[f64],
    ) {
        assert!(
            params.len() == grads.len() && grads.len() == factors.len(),
            "optimizer: params, grads and factors differ in length"
        );
        let mut slots: Vec<Slot<'_, T>> = params
            .iter_mut()
            .zip(grads)
            .zip(factors)
            .map(|((p, g), &f)| Slot {
                value: p.as_slice_mut().expect("parameters are contiguous"),
                grad: g.as_slice().expect("gradients are contiguous"),
                lr_factor: f,
            })
            .collect();
        self.step(&mut slots);
    }

    fn current_lr_at(&self, t: u64) -> f64 {
        self.config.lr * self.config.schedule.factor(t)
    }
}
