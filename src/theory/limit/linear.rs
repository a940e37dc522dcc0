//! The n → ∞ training trajectory of a linear MLP with a LoRA or SingLoRA adapter on its hidden layer (THEORY §5.5,
//! TP4's approach: a deterministic recursion on finitely many O(1) overlaps).
//!
//! **Network** (the `Mlp` of `models::mlp` with identity activation, depth 2, μP readout, adapter on `hidden.1`):
//! $$h_\mu = W_{in}x_\mu,\qquad f_\mu = \tfrac1n v^\top (W_0 + \Delta W)\,h_\mu,$$
//! $x_\mu \in \mathbb R^d$ fixed ($d$, the number of examples N and the rank r are O(1)), $W_{in}$ rows
//! $w_i \sim \mathcal N(0, I/d)$, $v_i \sim \mathcal N(0, 1)$ (the readout $v/n$ has variance $1/n^2$), loss
//! $L = \tfrac1{2N}\sum_\mu (f_\mu - y_\mu)^2$, $U_\mu = (f_\mu - y_\mu)/N$, so the upstream gradient is
//! $g_\mu = vU_\mu/n$ (ρ = 1). Write $u = \sum_\mu U_\mu x_\mu \in \mathbb R^d$ and $s_t = s\,u(t)$ (multiplier and ramp).
//!
//! **LoRA** ($\Delta W = s\,BA$, $B_0 = 0$). Order parameters $\beta = B^\top v/n$ and $Z_\mu = Ah_\mu$ (both in
//! $\mathbb R^r$), so that $f_\mu = \tfrac1n v^\top W_0 h_\mu + s_t\,\beta^\top Z_\mu$. With $b = \sum_\mu U_\mu Z_\mu$:
//! $\nabla_B = \tfrac{s_t}{n} v\,b^\top$ and $\nabla_A = s_t\,\beta\,(W_{in}u)^\top$. Hence
//! - SGD, rates $\eta_B = \tilde\eta_B\,n$, $\eta_A = \tilde\eta_A/n$ (LoRA+ under SGD: $c_B = -\rho$, $c_A = 2-\rho$):
//!   $\Delta\beta = -\tilde\eta_B s_t\,b\,\tfrac{v^\top v}{n}$, $\Delta Z_\mu = -\tilde\eta_A s_t\,\beta\;u^\top K x_\mu$,
//!   $K = W_{in}^\top W_{in}/n$ — **exact at every width**, with the network's own Grams;
//! - sign-SGD, $\eta_B = \tilde\eta_B n^{-c_B}$, $\eta_A = \tilde\eta_A n^{-c_A}$, $c_A + c_B = 1$ (LoRA+: $c_B = 0$;
//!   one shared rate: $c_B = 1/2$): $\mathrm{sign}(\nabla_B)_{ik} = \mathrm{sign}(v_i)\,\mathrm{sign}(b_k)$ and
//!   $\mathrm{sign}(\nabla_A)_{ki} = \mathrm{sign}(\beta_k)\,\mathrm{sign}(w_i^\top u)$, so in the variables
//!   $\hat\beta = n^{c_B}\beta$, $\hat Z = n^{-c_B}Z$:
//!   $\Delta\hat\beta = -\tilde\eta_B\,\mathbb E|v|\,\mathrm{sign}(b)$,
//!   $\Delta\hat Z_\mu = -\tilde\eta_A\,\mathrm{sign}(\hat\beta)\,\mathbb E[\mathrm{sign}(w^\top u)\,w^\top x_\mu]$.
//!
//! **SingLoRA** ($\Delta W = s\,AA^\top$). Order parameters $a = A^\top v$ and $Z_\mu = A^\top h_\mu$, so that
//! $f_\mu = \tfrac1n v^\top W_0 h_\mu + \tfrac{s_t}{n}\,a^\top Z_\mu$, and
//! $\nabla_A = \tfrac{s_t}{n}\,[\,v\,b^\top + (W_{in}u)\,a^\top]$ (output role + input role, THEORY §7).
//! - SGD at $c = 1-\rho = 0$: $\Delta a = -\eta s_t\,[\,b\,\tfrac{v^\top v}{n} + a\,u^\top \omega]$,
//!   $\Delta Z_\mu = -\eta s_t\,[\,b\,\omega^\top x_\mu + a\,u^\top Kx_\mu]$, $\omega = W_{in}^\top v/n$ — exact at every
//!   width. In the limit ($v^\top v/n \to 1$, $\omega \to 0$, $K \to I/d$) the overlaps follow the balanced hyperbolic
//!   growth of §5.5 while $f = O(1/n)$: the limit at fixed t is the saddle phase (the Θ(ln n) escape delay).
//! - sign-SGD at $c = 1/2$: row i moves by $-\eta n^{-1/2}\,\mathrm{sign}(X_{ik})$, $X_{ik} = v_i b_k + (w_i^\top u)\,a_k$,
//!   a Gaussian with variance $\sigma_k^2 = b_k^2 + a_k^2\lVert u\rVert^2/d$; in $\hat a = a/\sqrt n$,
//!   $\hat Z = Z/\sqrt n$ (so $f = s_t\,\hat a^\top \hat Z_\mu$):
//!   $\Delta\hat a_k = -\eta\,\mathbb E[\mathrm{sign}(X_k)\,v]$, $\Delta\hat Z_{\mu k} = -\eta\,\mathbb E[\mathrm{sign}(X_k)\,w^\top x_\mu]$.
//!
//! The expectations are closed-form (`gaussian`, exact up to round-off). Signs are scale-free, so while a rescaled
//! variable is still exactly zero (it starts at $n^{-e}\cdot O(1) \to 0$) the sign's argument is taken from the O(1)
//! initial overlaps, the **Gaussian basis** $G = A_0W_{in}$ (LoRA) or $A_0^\top W_{in}$ (SingLoRA) and
//! $a_0 = A_0^\top v$: the leading order of the finite-width argument. The finite-width deviations are the O(n^{-1/2})
//! fluctuations of the Grams ($v^\top v/n$, $K$, $\omega$, $v^\top W_0 h/n$) and of the sums behind the expectations.
//!
//! Not covered (rejected with a message): Adam with moments (its update is a nonlinear function of the whole gradient
//! history), weight decay, momentum, γ ≠ 0, non-constant schedules, other exponents (whose limit is trivial or
//! explodes, see `theory::Setting`).

use ndarray::{Array1, Array2, Axis};

use super::gaussian::{e_sign_times, E_ABS_STD_NORMAL};
use crate::adapters::{AdapterConfig, Init, Method, Ramp, Role};
use crate::error::{Error, Result};
use crate::optim::{sign, OptimizerConfig, Rule, Schedule};
use crate::rng::{normal_matrix, SeedRng};
use crate::train::mse;

/// The adapter family of a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// LoRA / LoRA+ ($B_0 = 0$).
    Lora,
    /// SingLoRA.
    Singlora,
}

/// The update rule of a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitRule {
    /// Plain SGD.
    Sgd,
    /// sign-SGD (Adam with β₁ = β₂ = 0 and ε → 0).
    Sign,
}

/// A validated parametrisation whose n → ∞ limit is a closed recursion.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearSetup {
    /// Adapter family.
    pub family: Family,
    /// Update rule.
    pub rule: LimitRule,
    /// Multiplier s (α/r or α/√r).
    pub scale: f64,
    /// Ramp u(t).
    pub ramp: Ramp,
    /// Rank r.
    pub rank: usize,
    /// $\tilde\eta$ of the input-side factor (LoRA's A, SingLoRA's A).
    pub eta_a: f64,
    /// $\tilde\eta_B$ (LoRA's B; unused for SingLoRA).
    pub eta_b: f64,
    /// Width exponent e of the order parameters (LoRA: $\hat\beta = n^e\beta$, $\hat Z = n^{-e}Z$; SingLoRA:
    /// $\hat a = n^{-e}a$, $\hat Z = n^{-e}Z$).
    pub e: f64,
    /// $n\,\mathrm{Var}(A_{0,ij})$: 1 for the width-aware init, 1/3 for PEFT's kaiming-uniform.
    pub init_var_n: f64,
}

/// The O(1) order parameters of a state.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderParams {
    /// $\hat\beta$ (LoRA) or $\hat a$ (SingLoRA), length r.
    pub readout_overlap: Array1<f64>,
    /// $\hat Z$, r × N.
    pub bottleneck: Array2<f64>,
}

/// One point of a trajectory (before the step with the same index).
#[derive(Clone, Debug, PartialEq)]
pub struct LimitPoint {
    /// Outputs $f_\mu$.
    pub f: Array1<f64>,
    /// Training loss $\tfrac1{2N}\sum(f-y)^2$.
    pub loss: f64,
    /// Order parameters.
    pub params: OrderParams,
}

/// The data and the O(1) Gaussian overlaps of the initial adapter: what a limit trajectory and every coupled
/// finite-width network share.
#[derive(Clone, Debug, PartialEq)]
pub struct Basis {
    /// Inputs, N × d.
    pub x: Array2<f64>,
    /// Targets, N.
    pub y: Array1<f64>,
    /// $G = A_0W_{in}$ (LoRA) or $A_0^\top W_{in}$ (SingLoRA), r × d.
    pub g: Array2<f64>,
    /// $a_0 = A_0^\top v$ (SingLoRA; zeros for LoRA, whose $B_0 = 0$).
    pub a0: Array1<f64>,
}

/// The width-n Grams the recursion depends on; [`Grams::limit`] gives their n → ∞ values.
#[derive(Clone, Debug, PartialEq)]
pub struct Grams {
    /// $v^\top v/n$.
    pub vv: f64,
    /// $K = W_{in}^\top W_{in}/n$, d × d.
    pub k: Array2<f64>,
    /// $\omega = W_{in}^\top v/n$, d.
    pub omega: Array1<f64>,
    /// The base network's outputs $v^\top W_0 h_\mu/n$, N.
    pub base: Array1<f64>,
    /// $1/n$.
    pub inv_n: f64,
}

impl Grams {
    /// The n → ∞ values: $v^\top v/n \to 1$, $K \to I/d$, $\omega \to 0$, base outputs → 0, $1/n \to 0$.
    pub fn limit(d: usize, examples: usize) -> Self {
        Grams {
            vv: 1.0,
            k: Array2::eye(d) / d as f64,
            omega: Array1::zeros(d),
            base: Array1::zeros(examples),
            inv_n: 0.0,
        }
    }
}

impl Basis {
    /// Draws the data ($x \sim \mathcal N(0, I_d)$, $y = \mathrm{sign}(t^\top x) = \pm 1$ for a Gaussian teacher t) and
    /// the overlaps' limit law: $G_{kj} \sim \mathcal N(0, n\mathrm{Var}(A_0)/d)$ (a sum of n products of
    /// independent coordinates), $a_{0,k} \sim \mathcal N(0, n\mathrm{Var}(A_0))$, independent because $v \perp W_{in}$.
    pub fn draw(setup: &LinearSetup, input_dim: usize, examples: usize, seed: u64) -> Self {
        let x: Array2<f64> =
            normal_matrix(&mut SeedRng::new(seed, "limit.x"), examples, input_dim, 1.0);
        let teacher: Array2<f64> =
            normal_matrix(&mut SeedRng::new(seed, "limit.teacher"), input_dim, 1, 1.0);
        let y = x
            .dot(&teacher)
            .column(0)
            .mapv(|v| if v >= 0.0 { 1.0 } else { -1.0 });
        let r = setup.rank;
        let std_g = (setup.init_var_n / input_dim as f64).sqrt();
        let g = normal_matrix(
            &mut SeedRng::new(seed, "limit.basis.g"),
            r,
            input_dim,
            std_g,
        );
        let a0 = match setup.family {
            Family::Lora => Array1::zeros(r),
            Family::Singlora => normal_matrix::<f64>(
                &mut SeedRng::new(seed, "limit.basis.a0"),
                r,
                1,
                setup.init_var_n.sqrt(),
            )
            .column(0)
            .to_owned(),
        };
        Basis { x, y, g, a0 }
    }

    /// The initial bottleneck overlaps $Z_0 = G\,x_\mu$, r × N (unscaled).
    pub fn z0(&self) -> Array2<f64> {
        self.g.dot(&self.x.t())
    }
}

impl LinearSetup {
    /// Validates a study's adapter and optimiser against the parametrisations with a closed limit, and converts the
    /// rates to limit units. Every rejection names the field, its value and what is accepted.
    pub fn new(adapter: &AdapterConfig, optimizer: &OptimizerConfig) -> Result<Self> {
        let family = limit_family(adapter)?;
        let rule = limit_rule(adapter, optimizer)?;
        let init_var_n = init_var_n(adapter, family)?;
        let g = &optimizer.groups;
        let eta = optimizer.lr;
        let (c_a, c_b) = match family {
            Family::Lora => (g.exponent(Role::LoraA), g.exponent(Role::LoraB)),
            Family::Singlora => (g.exponent(Role::SingleA), g.exponent(Role::SingleA)),
        };
        let ratio_b = if g.in_b_group(Role::LoraB) {
            g.loraplus_ratio
        } else {
            1.0
        };
        let e = rate_exponent(family, rule, c_a, c_b)?;
        Ok(LinearSetup {
            family,
            rule,
            scale: adapter.scaling.scale(adapter.alpha, adapter.rank),
            ramp: adapter.ramp,
            rank: adapter.rank,
            eta_a: eta,
            eta_b: eta * ratio_b,
            e,
            init_var_n,
        })
    }

    /// The multiplier of $\hat{\text{overlap}}^\top\hat Z$ in the output: 1, except SingLoRA under SGD, where it is
    /// $1/n$ (the saddle phase).
    fn output_factor(&self, grams: &Grams) -> f64 {
        match (self.family, self.rule) {
            (Family::Singlora, LimitRule::Sgd) => grams.inv_n,
            _ => 1.0,
        }
    }

    /// The initial order parameters at width n (`inv_n` = 1/n; 0 for the limit).
    fn initial(&self, basis: &Basis, inv_n: f64) -> OrderParams {
        // n^{−e}: exactly 1 when e = 0 (also in the limit), 0 in the limit when e > 0.
        let shrink = if self.e == 0.0 {
            1.0
        } else {
            inv_n.powf(self.e)
        };
        OrderParams {
            readout_overlap: match self.family {
                Family::Lora => Array1::zeros(self.rank),
                Family::Singlora => &basis.a0 * shrink,
            },
            bottleneck: basis.z0() * shrink,
        }
    }

    /// The n → ∞ trajectory at t = 0…steps.
    pub fn limit(&self, basis: &Basis, steps: u64) -> Vec<LimitPoint> {
        let grams = Grams::limit(basis.x.ncols(), basis.x.nrows());
        self.run(basis, &grams, steps)
    }

    /// The SGD recursion with a width-n network's own Grams: exact at that width (the finite-width dynamics of SGD
    /// stay in a fixed finite-dimensional span). Sign updates leave the span, so this is SGD-only.
    pub fn reduced(&self, basis: &Basis, grams: &Grams, steps: u64) -> Result<Vec<LimitPoint>> {
        if self.rule != LimitRule::Sgd {
            return Err(Error::invalid(
                "optimizer.rule",
                "sign_sgd",
                "sgd (the exact finite-width reduction exists for SGD only)",
            ));
        }
        Ok(self.run(basis, grams, steps))
    }

    fn run(&self, basis: &Basis, grams: &Grams, steps: u64) -> Vec<LimitPoint> {
        let mut state = self.initial(basis, grams.inv_n);
        let mut out = Vec::with_capacity(steps as usize + 1);
        let targets = basis.y.clone().insert_axis(Axis(1));
        for t in 0..=steps {
            let s_t = self.scale * self.ramp.u(t);
            let f = &grams.base
                + &(state.readout_overlap.dot(&state.bottleneck)
                    * (s_t * self.output_factor(grams)));
            // The loss and U = ∂L/∂f exactly as the finite network's training loop computes them.
            let (loss, grad_f) = mse(&f.clone().insert_axis(Axis(1)), &targets);
            out.push(LimitPoint {
                f,
                loss,
                params: state.clone(),
            });
            if t == steps || !loss.is_finite() {
                break;
            }
            let big_u = grad_f.column(0).to_owned();
            let drive = Drive {
                u: basis.x.t().dot(&big_u),
                big_u,
                s_t,
            };
            let (d_out, d_z) = match (self.family, self.rule) {
                (_, LimitRule::Sgd) => self.sgd(basis, grams, &state, &drive),
                (Family::Lora, LimitRule::Sign) => self.lora_sign(basis, &state, &drive),
                (Family::Singlora, LimitRule::Sign) => self.singlora_sign(basis, &state, &drive),
            };
            state.readout_overlap += &d_out;
            state.bottleneck += &d_z;
        }
        out
    }

    /// SGD, with $b = \sum_\mu U_\mu Z_\mu$ and $u^\top Kx_\mu$ shared by both families. LoRA:
    /// $\Delta\beta = -\tilde\eta_B s_t\,b\,v^\top v/n$, $\Delta Z_\mu = -\tilde\eta_A s_t\,\beta\,u^\top Kx_\mu$.
    /// SingLoRA: $\Delta a = -\eta s_t\,[b\,v^\top v/n + a\,u^\top\omega]$,
    /// $\Delta Z_\mu = -\eta s_t\,[b\,\omega^\top x_\mu + a\,u^\top Kx_\mu]$.
    fn sgd(&self, basis: &Basis, grams: &Grams, state: &OrderParams, drive: &Drive) -> Increment {
        let Drive { big_u, u, s_t } = drive;
        let b = state.bottleneck.dot(big_u);
        let uk = basis.x.dot(&grams.k.dot(u)); // uᵀK x_μ, N
        let a = &state.readout_overlap;
        match self.family {
            Family::Lora => (
                &b * (-self.eta_b * s_t * grams.vv),
                outer(a, &uk) * (-self.eta_a * s_t),
            ),
            Family::Singlora => {
                let uw = u.dot(&grams.omega);
                let wx = basis.x.dot(&grams.omega); // ωᵀx_μ
                (
                    (&b * grams.vv + a * uw) * (-self.eta_a * s_t),
                    (outer(&b, &wx) + outer(a, &uk)) * (-self.eta_a * s_t),
                )
            }
        }
    }

    /// LoRA under sign-SGD: $\Delta\hat\beta = -\tilde\eta_B\,\mathbb E|v|\,\mathrm{sign}(b)$,
    /// $\Delta\hat Z_\mu = -\tilde\eta_A\,\mathrm{sign}(\hat\beta)\,\mathbb E[\mathrm{sign}(w^\top u)\,w^\top x_\mu]$.
    fn lora_sign(&self, basis: &Basis, state: &OrderParams, drive: &Drive) -> Increment {
        let Drive { big_u, u, s_t } = drive;
        let d = basis.x.ncols() as f64;
        let b_dir = sign_direction(&state.bottleneck, || basis.z0()).dot(big_u);
        let var_x = u.dot(u) / d;
        let e_x = basis.x.dot(u).mapv(|c| e_sign_times(c / d, var_x));
        let sb = state.readout_overlap.mapv(|v| sign(s_t * v));
        (
            b_dir.mapv(|v| -self.eta_b * sign(*s_t) * E_ABS_STD_NORMAL * sign(v)),
            outer(&sb, &e_x) * -self.eta_a,
        )
    }

    /// SingLoRA under sign-SGD: $\Delta\hat a_k = -\eta\,\mathbb E[\mathrm{sign}(X_k)\,v]$,
    /// $\Delta\hat Z_{\mu k} = -\eta\,\mathbb E[\mathrm{sign}(X_k)\,w^\top x_\mu]$, $X_k$ Gaussian with variance
    /// $b_k^2 + a_k^2\lVert u\rVert^2/d$.
    fn singlora_sign(&self, basis: &Basis, state: &OrderParams, drive: &Drive) -> Increment {
        let Drive { big_u, u, s_t } = drive;
        let d = basis.x.ncols() as f64;
        let b_dir = sign_direction(&state.bottleneck, || basis.z0()).dot(big_u);
        let a_dir = sign_direction(&state.readout_overlap, || basis.a0.clone());
        let ux = basis.x.dot(u) / d; // Cov(wᵀu, wᵀx_μ)
        let uu = u.dot(u) / d;
        let on = sign(*s_t);
        let mut da = Array1::zeros(self.rank);
        let mut dz = Array2::zeros(state.bottleneck.raw_dim());
        for k in 0..self.rank {
            let (bk, ak) = (b_dir[k], a_dir[k]);
            let var = bk * bk + ak * ak * uu;
            da[k] = -self.eta_a * on * e_sign_times(bk, var);
            for (m, &c) in ux.iter().enumerate() {
                dz[[k, m]] = -self.eta_a * on * e_sign_times(ak * c, var);
            }
        }
        (da, dz)
    }
}

/// One step's increments of the order parameters: (readout overlap, bottleneck).
type Increment = (Array1<f64>, Array2<f64>);

/// What one step of the recursion reads besides the state.
struct Drive {
    /// $U = \partial L/\partial f$, one entry per example.
    big_u: Array1<f64>,
    /// $u = \sum_\mu U_\mu x_\mu$.
    u: Array1<f64>,
    /// $s_t = s\,u(t)$.
    s_t: f64,
}

/// The argument of a sign update: `v`, or while it is still exactly zero, the unscaled initial overlaps `initial`
/// (signs are scale-free; see the module doc).
fn sign_direction<D: ndarray::Dimension>(
    v: &ndarray::Array<f64, D>,
    initial: impl FnOnce() -> ndarray::Array<f64, D>,
) -> ndarray::Array<f64, D> {
    if v.iter().all(|&x| x == 0.0) {
        initial()
    } else {
        v.clone()
    }
}

/// The adapter family a limit exists for: LoRA (and LoRA+) or SingLoRA.
fn limit_family(adapter: &AdapterConfig) -> Result<Family> {
    match adapter.method {
        Method::Lora => Ok(Family::Lora),
        Method::Singlora => Ok(Family::Singlora),
        other => Err(Error::invalid(
            "adapter.method",
            other.name(),
            "lora or singlora (the limit covers LoRA, LoRA+ and SingLoRA)",
        )),
    }
}

/// The optimiser rule a limit exists for: plain SGD or sign-SGD, at a constant rate and a fixed multiplier.
fn limit_rule(adapter: &AdapterConfig, optimizer: &OptimizerConfig) -> Result<LimitRule> {
    let rule = match optimizer.rule {
        Rule::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        } => LimitRule::Sgd,
        Rule::SignSgd { weight_decay: 0.0 } => LimitRule::Sign,
        _ => return Err(Error::invalid(
            "optimizer.rule",
            optimizer.rule.name(),
            "sgd or sign_sgd without momentum or weight decay (Adam's moments make the update a nonlinear \
             function of the gradient history, which this limit does not cover; sign_sgd is Adam with β₁ = β₂ = 0, ε → 0)",
        )),
    };
    if optimizer.schedule != Schedule::default() {
        return Err(Error::invalid(
            "optimizer.schedule",
            format!("{:?}", optimizer.schedule),
            "the constant schedule",
        ));
    }
    if adapter.multiplier_exponent != 0.0 {
        return Err(Error::invalid(
            "adapter.multiplier_exponent",
            adapter.multiplier_exponent,
            "0 (the limit keeps s fixed)",
        ));
    }
    Ok(rule)
}

/// n times the variance of the initial factor's entries (1 for N(0, 1/n)); LoRA's B must start at zero.
fn init_var_n(adapter: &AdapterConfig, family: Family) -> Result<f64> {
    let init = adapter.effective_init();
    let init_var_n = match init {
        Init::WidthAware => 1.0,
        Init::KaimingUniform => 1.0 / 3.0,
        Init::Gaussian { std, beta: 0.5 } => std * std,
        other => return Err(Error::invalid(
            "adapter.init",
            other,
            "an init with variance ∝ 1/n: width_aware, kaiming_uniform or gaussian(std=S,beta=0.5)",
        )),
    };
    if family == Family::Lora && adapter.init_b != Init::Zeros {
        return Err(Error::invalid("adapter.init_b", adapter.init_b, "zeros"));
    }
    Ok(init_var_n)
}

/// The width exponent e of the limit's rates for the study's rate exponents (c_A, c_B), when they give a
/// non-trivial, finite limit.
fn rate_exponent(family: Family, rule: LimitRule, c_a: f64, c_b: f64) -> Result<f64> {
    match (family, rule) {
        (Family::Lora, LimitRule::Sgd) if c_a == 1.0 && c_b == -1.0 => Ok(0.0),
        (Family::Lora, LimitRule::Sign)
            if (c_a + c_b - 1.0).abs() < 1e-12 && (0.0..1.0).contains(&c_b) =>
        {
            Ok(c_b)
        }
        (Family::Singlora, LimitRule::Sgd) if c_a == 0.0 => Ok(0.0),
        (Family::Singlora, LimitRule::Sign) if c_a == 0.5 => Ok(0.5),
        _ => {
            let accepted = match (family, rule) {
                (Family::Lora, LimitRule::Sgd) => "lora_a = 1 and lora_b = -1 (LoRA+ under SGD, ρ = 1)",
                (Family::Lora, LimitRule::Sign) => "lora_a + lora_b = 1 with 0 ≤ lora_b < 1 (LoRA+: 1 and 0; one shared rate: 1/2 and 1/2)",
                (Family::Singlora, LimitRule::Sgd) => "singlora_a = 0 (c = 1 − ρ)",
                (Family::Singlora, LimitRule::Sign) => "singlora_a = 1/2 (c* = (1 − γ)/2)",
            };
            Err(Error::invalid(
                "optimizer.groups.lr_exponent",
                format!("(c_A = {c_a}, c_B = {c_b})"),
                &format!("{accepted}: the exponents with a non-trivial, finite limit"),
            ))
        }
    }
}

/// $a\,b^\top$.
fn outer(a: &Array1<f64>, b: &Array1<f64>) -> Array2<f64> {
    a.view()
        .insert_axis(Axis(1))
        .dot(&b.view().insert_axis(Axis(0)))
}
