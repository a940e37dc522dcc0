//! Predicted width exponents, derived by power counting from a study's configuration (THEORY §5). Nothing here is a
//! lookup of P1–P18: every exponent is the maximum over the terms of a decomposition ([`dominant`]), each term's
//! exponent computed from the scaling knobs. The engine covers one adapted layer of any [`Shape`] family — LoRA with
//! $B_0 = 0$ and SingLoRA, under Adam-like (sign at step 1) and SGD updates — in three [`Regime`]s: the initial state
//! (t = 0), the first step (t = 1) and the balanced regime (t ≫ 1 but O(1), after alignment). Each prediction carries
//! the conditions it needs; the stable rate exponent c* is the root of the engine's own balanced output exponent. The
//! infinite-width limits that close on a finite state are in [`limit`].
//!
//! ## Knobs
//! Width n; $d_{in} \sim n^{a_{in}}$, $d_{out} \sim n^{a_{out}}$, $m = \max(d_{in}, d_{out}) \sim n^{\mu}$ ([`Shape`]).
//! Init std of the random factor $n^{-b}$: $b = \mu/2$ for width-aware ($1/\sqrt m$), $b = \beta\mu$ for
//! `gaussian(std, beta)` (the knob width is Θ(m); a fixed `adapter.width` makes it Θ(1)), $b = a_{in}/2$ for LoRA's
//! PEFT kaiming ($1/\sqrt{d_{in}}$), b = 0 for kaiming-r and PEFT gaussian. Multiplier $s \sim n^{-\gamma}$ (γ times
//! the knob's exponent μ = 1). Rates $\eta\,n^{-c}$ per role (c for SingLoRA's A; $c_A$, $c_B$ for LoRA). The layer's
//! input h has Θ(1) coordinates, the upstream gradient g has coordinates $n^{-\rho}$ (ρ = 1 μP readout, 1/2 standard).
//!
//! **Power counting.** A sum of terms $\Theta(n^{e_i})$ is $\Theta(n^{\max_i e_i})$ (no cancellation at leading order).
//! A sum of $n^a$ terms of size Θ(1) is $n^a$ when they are aligned (coherent) and $n^{a/2}$ when random.
//!
//! ## SingLoRA, $\Delta W = s\,A_{out}A_{in}^\top$
//! Blocks: bottleneck $p_0 = A_{0,in}^\top h \sim n^{a_{in}/2-b}$, $q_0 = A_{0,out}^\top g \sim n^{a_{out}/2-b-\rho}$;
//! $\nabla_A = s\,[\,g\,p^\top$ on the $d_{out}$ output rows $+\ h\,q^\top$ on the $d_{in}$ input rows$\,]$.
//! - Adam (sign, exact at step 1 with bias correction): $\Delta A$ coordinates $u_{out} = u_{in} = -c$. On the rows of
//!   $A_{in}$ the sign correlates with h at Θ(1): fully on input-only rows, and on shared rows because the two roles'
//!   terms are comparable (square, tall) or the input role dominates (fixed_in).
//! - SGD: $u_{out} = -c-\gamma-\rho+p_0$, $u_{in} = -c-\gamma+q_0$ (on shared rows the other role adds at most the same
//!   order, or incoherently).
//!
//! Then $\Delta A_{in}^\top h \sim n^{v_{in}}$, $v_{in} = u_{in}+a_{in}$ (coherent over $d_{in}$ rows), and
//! $\Delta A_{out}^\top g \sim n^{w_{out}}$, $w_{out} = u_{out}+a_{out}-\rho$. First step, $\Delta z_1 = s(T_1+T_2+T_3)$:
//! $$T_1 = \Delta A_{out}\,p_0:\ -\gamma+u_{out}+p_0,\qquad T_2 = A_{0,out}(\Delta A_{in}^\top h):\ -\gamma-b+v_{in},\qquad
//!   T_3 = \Delta A_{out}(\Delta A_{in}^\top h):\ -\gamma+u_{out}+v_{in}.$$
//! Square, width-aware, Adam: $-c,\ 1/2-c,\ 1-2c$ (all $-\gamma$); SGD: $-c-\rho$, $1/2-c-\rho$, $1-2c-2\rho$ with
//! $-2\gamma, -2\gamma, -3\gamma$ (the gradient carries s too).
//!
//! **Balanced, Adam.** After t = O(1) steps $A = A_0 + D$, D's coordinates $n^{-c}$ aligned with h (input rows) and
//! g (output rows): the bottleneck is $p_t \sim n^{\max(p_0,\,v_{in})}$ and $A_{out}^\top g \sim n^{\max(q_0,\,w_{out})}$.
//! The per-step and the cumulative Δz are sums of the same three products ($D_{out}p_0$, $A_{0,out}D_{in}^\top h$,
//! $D_{out}D_{in}^\top h$), so they keep the first-step exponent, while the per-step $T_1$ ($T_2$) now sees the aligned
//! bottleneck ($A_{out}$). $\lVert A\rVert_F \sim n^{\max(\mu/2-b,\ \mu/2-c)}$; $\lVert\nabla_A\rVert_F$: output rows
//! $a_{out}/2-\gamma-\rho+p_t$, input rows $a_{in}/2-\gamma+q_t$; $\lVert\Delta W\rVert_{op}$:
//! $-\gamma+(a_{in}+a_{out})/2+\max(-2b,\,-b-c,\,-2c)$, so $\lVert\Delta W\rVert_{op}/\sqrt{d_{out}/d_{in}} \sim
//! n^{a_{in}-2c-\gamma}$ once D dominates (P17).
//!
//! **Balanced, SGD** (THEORY §5.5). The aligned coordinates grow at $\kappa = \eta\,s\lVert g\rVert\lVert h\rVert \sim
//! n^{e_\kappa}$, $e_\kappa = -c-\gamma+(a_{in}+a_{out})/2-\rho$. Every factor-level quantity changes by a relative
//! $O(\kappa t)$ (e.g. $v_{in}-p_0 = w_{out}-q_0 = e_\kappa$), so for $e_\kappa \le 0$ at fixed t they keep their
//! initial exponents and the per-step changes their first-step ones; $e_\kappa > 0$ explodes; at $e_\kappa = 0$ the
//! useful output $s\,p\,q$ starts at $n^{e_u}$, $e_u = -\gamma-2b+(a_{in}-a_{out})/2$ ($p_0, q_0 \sim n^{-b}$ along
//! the unit directions of h and g) and grows like $e^{2\kappa t}$: Θ(1) after $t^* \approx a - e_u\ln n/(2\kappa)$.
//!
//! ## LoRA, $\Delta W = s\,BA$, $B_0 = 0$
//! $Z_0 = A_0h \sim n^{a_{in}/2-b}$; $\nabla_B = s\,gZ^\top$, $\nabla_A = s\,B^\top g\,h^\top = 0$ at step 1. $\Delta B$
//! coordinates: Adam $u_B = -c_B$, SGD $u_B = -c_B-\gamma-\rho+Z_0$. First step: only $\delta^2 = \Delta B\,Z_0$,
//! $-\gamma+u_B+Z_0$. Balanced (Adam): B aligned with g, $B^\top g \sim n^{u_B+a_{out}-\rho}$; $\Delta A$ coordinates
//! $u_A = -c_A$ along h, $\Delta Z \sim n^{u_A+a_{in}}$, $Z_t \sim n^{\max(Z_0,\,u_A+a_{in})}$; $\delta^2 = \Delta B\,Z_t$,
//! $\delta^1 \sim \delta^3 \sim n^{-\gamma+u_B+u_A+a_{in}}$; $\lVert B\rVert_F$: $a_{out}/2+u_B$; $\lVert\nabla_A\rVert_F$:
//! $-\gamma+u_B+a_{out}-\rho+a_{in}/2$; $\lVert\nabla_B\rVert_F$: $-\gamma-\rho+Z_t+a_{out}/2$ (THEORY §5.2's table).
//! SGD: $\kappa_A$, $\kappa_B$ as above with $c_A$, $c_B$; the aligned pair grows at $\sqrt{\kappa_A\kappa_B}$.
//!
//! ## Initial state
//! SingLoRA's own output $s\,A_{0,out}A_{0,in}^\top h$: off-diagonal coordinates $-\gamma-b+p_0$, and on the
//! $\min(d_{in}, d_{out})$ shared rows a diagonal part $(A_0A_0^\top)_{ii}h_i \sim n^{-2b}$ (its rms diluted by
//! $\sqrt{\min(d_{in},d_{out})/d_{out}}$); $\lVert\Delta W\rVert_{op} \sim n^{-\gamma+(a_{in}+a_{out})/2-2b}$;
//! $\lVert\nabla_A\rVert_F \sim n^{(a_{in}+a_{out})/2-b-\rho-\gamma}$ (both roles).
//!
//! ## Stable rate
//! c* is the largest shared rate exponent at which the balanced output change does not vanish (S and NV): under Adam
//! the root of the balanced Δz exponent, a maximum of lines in c, hence the largest of the lines' roots (square
//! $c^* = (1-\gamma)/2$; in general $(a_{in}-\gamma)/2$, i.e. $\eta^* \propto d_{in}^{-1/2}$); under SGD the root of
//! $e_\kappa$, $c^* = (a_{in}+a_{out})/2-\rho-\gamma$, i.e. $\eta^* \propto (d_{out}d_{in})^{-1/2}/n^{-\rho}$. There is
//! none when the initial output already explodes.

pub mod finite;
pub mod limit;
pub mod reach;
mod shape;

pub use reach::{Reach, REACHED};
pub use shape::Shape;

use serde::Serialize;

use crate::adapters::Role;
/// The named pieces of a per-step output change (LoRA δ¹…δ³, SingLoRA T₁…T₃).
use crate::adapters::Term as Split;
use crate::adapters::{AdapterConfig, Init, Method};
use crate::models::Readout;
use crate::optim::{Groups, Rule};
use crate::probes::Quantity;
use crate::probes::Quantity as Q;

/// Exponents closer than this are equal (they are sums of dyadic rationals, so exact in practice).
const EPS: f64 = 1e-9;

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
    /// The adapted layer's shape family (square for the MLP's hidden layer).
    pub shape: Shape,
}

/// When a prediction holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// t = 0, at initialisation.
    Init,
    /// t = 1, after one update.
    FirstStep,
    /// t ≫ 1 but O(1), after alignment.
    Balanced,
}

impl Regime {
    /// The name used in tables (`init`, `first_step`, `balanced`).
    pub fn name(self) -> &'static str {
        match self {
            Regime::Init => "init",
            Regime::FirstStep => "first_step",
            Regime::Balanced => "balanced",
        }
    }

    /// The step a prediction of this regime is stated at: 0, 1, or `u64::MAX` for the balanced regime (no fixed step;
    /// a sweep compares it at its last recorded step).
    pub fn step(self) -> u64 {
        match self {
            Regime::Init => 0,
            Regime::FirstStep => 1,
            Regime::Balanced => u64::MAX,
        }
    }

    /// The regime a sweep compares a fit at `step` with, when `last` is its last recorded step: Init at 0, FirstStep
    /// at 1, Balanced at `last` (when it is later than 1).
    pub fn compared_at(step: u64, last: u64) -> Option<Regime> {
        match step {
            0 => Some(Regime::Init),
            1 => Some(Regime::FirstStep),
            t if t == last => Some(Regime::Balanced),
            _ => None,
        }
    }
}

/// A predicted exponent with the terms it is the maximum of and the conditions it needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Quantity: a probe name (`dz_rms`, `grad_fro.singlora_A.weight`, …), or `kappa` (SGD's balanced growth rate).
    pub quantity: Quantity,
    /// The regime.
    pub regime: Regime,
    /// The regime's step ([`Regime::step`]): 0, 1, or `u64::MAX` for the balanced regime.
    pub step: u64,
    /// The exponent.
    pub exponent: f64,
    /// How it arises, e.g. `max(T1 -0.50, T2 +0.00, T3 +0.00)`.
    pub derivation: String,
    /// What it needs, e.g. `sign-Adam exact at step 1 with bias correction; ε ≪ gradient coords`.
    pub conditions: String,
    /// Whether its leading terms lead only once η₀·t·n^gap ≫ 1 ([`reach`]): the terms behind them and their gaps;
    /// `None` when no term needs the rate to overtake or stay behind.
    pub reach: Option<Reach>,
}

/// A named term of a decomposition and its exponent of n.
pub type Term = (&'static str, f64);

/// Power counting: the exponent of a sum of terms $\Theta(n^{e_i})$ is $\max_i e_i$. Returns it with its derivation
/// (`max(T1 -0.50, T2 +0.00)`, or `A₀ᵀh +0.00` for a single term).
pub fn dominant(terms: &[Term]) -> (f64, String) {
    let e = terms.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max) + 0.0;
    let parts: Vec<String> = terms
        .iter()
        .map(|(n, x)| format!("{n} {:+.2}", x + 0.0))
        .collect();
    let derivation = match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("max({})", parts.join(", ")),
    };
    (e, derivation)
}

/// The exponents the power counting works with (see the module doc).
#[derive(Clone, Copy, Debug)]
struct Knobs {
    adam: bool,
    a_in: f64,
    a_out: f64,
    mu: f64,
    b: f64,
    gamma: f64,
    rho: f64,
    /// SingLoRA's c.
    c: f64,
    c_a: f64,
    c_b: f64,
}

impl Knobs {
    /// The same knobs with one shared rate exponent c for every role.
    fn shared(mut self, c: f64) -> Self {
        (self.c, self.c_a, self.c_b) = (c, c, c);
        self
    }

    /// The exponent of $s\lVert g\rVert$, the multiplier times the upstream gradient over the output side
    /// ($n^{a_{out}}$ coordinates of size $n^{-\rho}$): $-\gamma + a_{out}/2 - \rho$, the output-role factor of every
    /// gradient term $s\,g\,(\cdot)^\top$.
    fn sg(&self) -> f64 {
        self.a_out / 2.0 - self.gamma - self.rho
    }

    /// The exponent of $s\lVert h\rVert$ (the input side's $n^{a_{in}}$ coordinates of size 1): $-\gamma + a_{in}/2$,
    /// the input-role factor of every gradient term $s\,h\,(\cdot)^\top$.
    fn sh(&self) -> f64 {
        self.a_in / 2.0 - self.gamma
    }

    /// $e_\kappa$ of a role's rate exponent: $\kappa = \eta s\lVert g\rVert\lVert h\rVert$.
    fn kappa(&self, c: f64) -> f64 {
        -c - self.gamma + (self.a_in + self.a_out) / 2.0 - self.rho
    }
}

/// SingLoRA's blocks and terms (module doc).
struct Sing {
    p0: f64,
    q0: f64,
    u_out: f64,
    v_in: f64,
    w_out: f64,
    t1: Term,
    t2: Term,
    t3: Term,
}

fn singlora(k: &Knobs) -> Sing {
    let g = k.gamma;
    let p0 = k.a_in / 2.0 - k.b;
    let q0 = k.a_out / 2.0 - k.b - k.rho;
    let (u_out, u_in) = if k.adam {
        (-k.c, -k.c)
    } else {
        (-k.c - g - k.rho + p0, -k.c - g + q0)
    };
    let v_in = u_in + k.a_in;
    let w_out = u_out + k.a_out - k.rho;
    Sing {
        p0,
        q0,
        u_out,
        v_in,
        w_out,
        t1: ("T1", -g + u_out + p0),
        t2: ("T2", -g - k.b + v_in),
        t3: ("T3", -g + u_out + v_in),
    }
}

/// LoRA's blocks (module doc).
struct Lora {
    z0: f64,
    u_b: f64,
    u_a: f64,
    d2: Term,
    aligned: Term,
}

fn lora(k: &Knobs) -> Lora {
    let g = k.gamma;
    let z0 = k.a_in / 2.0 - k.b;
    let u_b = if k.adam {
        -k.c_b
    } else {
        -k.c_b - g - k.rho + z0
    };
    let u_a = -k.c_a;
    Lora {
        z0,
        u_b,
        u_a,
        d2: ("ΔB·(A₀h)", -g + u_b + z0),
        aligned: ("B·(ΔA·h)", -g + u_b + u_a + k.a_in),
    }
}

const INIT: &str =
    "t = 0: random A₀, input coords Θ(1), upstream gradient coords n^(−ρ); no ramp (u = 1)";
const FIRST_ADAM: &str = "sign-Adam exact at step 1 with bias correction; ε ≪ gradient coords; ΔA_inᵀh is \
     coherent only for d_in ≫ π·N (batch N): a slope bias finite::coherence_bias(N, widths), printed for the study";
const FIRST_ADAM_LORA: &str =
    "sign-Adam exact at step 1 with bias correction; ε ≪ gradient coords; B₀ = 0, so only B moves";
const FIRST_SGD: &str =
    "one SGD step (momentum does not change step 1); leading order of each product";
const FIXED_T_SGD: &str =
    "SGD at fixed t = O(1) with κ ≲ Θ(1) (see kappa): factors change by a relative O(κt), \
     so they keep their initial exponents and per-step changes their step-1 ones";
const BALANCED_ADAM: &str = "Adam-like, t ≫ 1 but O(1), after alignment: per-step updates n^(−c) along h (input \
     side) and g (output side), residual Θ(1), ε ≪ gradient coords; coherent sums need d_in ≫ π·N (batch N; \
     slope bias finite::coherence_bias(N, widths), printed for the study); the aligned parts carry η₀·t and overtake the initial ones only once \
     η₀·t·n^(gap) ≫ 1 (slow approach, P4; each prediction's reach, graded only where it holds at the smallest fitted width)";

/// Collects predictions.
struct Sink {
    out: Vec<Prediction>,
    /// The role whose rate the terms' orders count, under sign updates; `None` under SGD (no reach: [`reach`]).
    rate: Option<Role>,
}

impl Sink {
    fn add(&mut self, regime: Regime, quantity: Quantity, terms: &[Term], conditions: &str) {
        self.push(regime, quantity, terms, conditions, None);
    }

    /// A prediction of the balanced Adam-like regime ([`BALANCED_ADAM`]'s conditions), without orders.
    fn balanced(&mut self, quantity: Quantity, terms: &[Term]) {
        self.add(Regime::Balanced, quantity, terms, BALANCED_ADAM);
    }

    /// [`Sink::balanced`] with the terms' orders in η₀·t ([`Sink::add_staged`]).
    fn balanced_staged(&mut self, quantity: Quantity, terms: &[Term], orders: &[u32]) {
        self.add_staged(Regime::Balanced, quantity, terms, orders, BALANCED_ADAM);
    }

    /// A prediction whose terms have orders in η₀·t ([`reach`]; one per term: how many accumulated changes D, or
    /// at t = 1 extra steps ΔA, each carries beyond the lowest-order term).
    fn add_staged(
        &mut self,
        regime: Regime,
        quantity: Quantity,
        terms: &[Term],
        orders: &[u32],
        conditions: &str,
    ) {
        let reach = self.rate.and_then(|role| Reach::of(terms, orders, role));
        self.push(regime, quantity, terms, conditions, reach);
    }

    fn push(
        &mut self,
        regime: Regime,
        quantity: Quantity,
        terms: &[Term],
        conditions: &str,
        reach: Option<Reach>,
    ) {
        let (exponent, derivation) = dominant(terms);
        self.out.push(Prediction {
            quantity,
            regime,
            step: regime.step(),
            exponent,
            derivation,
            conditions: conditions.to_string(),
            reach,
        });
    }
}

/// SGD's balanced verdict from the growth-rate exponent and the initial useful output's exponent $e_u$.
fn sgd_verdict(e_kappa: f64, e_u: f64) -> String {
    if e_kappa > EPS {
        format!(
            "κ ~ n^{e_kappa:+.2} → ∞: explodes (the aligned part grows ≈ (1 + κ) per step; P10); no exponent at fixed t"
        )
    } else if e_kappa < -EPS {
        format!(
            "κ ~ n^{e_kappa:+.2} → 0: vanishes (factors change by a relative O(κt); the useful output stays at \
             n^{e_u:+.2})"
        )
    } else {
        format!(
            "requires κ = Θ(1): Θ(1) useful output only after a Θ(ln n) escape delay under SGD, t* ≈ a + {:.2}·ln n/(2κ) \
             from n^{e_u:+.2}",
            -e_u
        )
    }
}

impl Setting {
    /// ρ, the exponent of the upstream gradient's coordinates.
    pub fn rho(&self) -> f64 {
        match self.readout {
            Readout::Mup => 1.0,
            Readout::Standard => 0.5,
        }
    }

    /// β of the random factor for a square layer, if the init has a power-law std.
    pub fn beta(&self) -> Option<f64> {
        match self.adapter.effective_init() {
            Init::WidthAware | Init::KaimingUniform => Some(0.5),
            Init::KaimingR | Init::PeftGaussian => Some(0.0),
            Init::Gaussian { beta, .. } => Some(beta),
            Init::Zeros => None,
        }
    }

    /// b: the random factor's init std is $n^{-b}$ in this shape family (module doc), if it has a power-law std.
    pub fn init_exponent(&self) -> Option<f64> {
        let (a_in, mu) = (self.shape.a_in(), self.shape.mu());
        Some(match self.adapter.effective_init() {
            Init::WidthAware => mu / 2.0,
            Init::KaimingUniform => a_in / 2.0,
            Init::KaimingR | Init::PeftGaussian => 0.0,
            Init::Gaussian { beta, .. } => beta * self.knob_exponent(),
            Init::Zeros => return None,
        })
    }

    /// The exponent of the knob width (the n of $n^{-\beta}$ and $n^{-\gamma}$): μ, or 0 for a fixed `adapter.width`.
    fn knob_exponent(&self) -> f64 {
        if self.adapter.width.is_some() {
            0.0
        } else {
            self.shape.mu()
        }
    }

    fn c(&self, role: Role) -> f64 {
        self.groups.exponent(role)
    }

    /// Whether the rule is Adam-like (normalised: Adam, AdamW, sign-SGD) rather than SGD. Momentum changes neither the
    /// first step nor the balanced exponents.
    fn adam_like(&self) -> bool {
        !matches!(self.rule, Rule::Sgd { .. })
    }

    /// Whether the engine covers the adapter: SingLoRA, or LoRA with $B_0 = 0$.
    fn covered(&self) -> bool {
        match self.adapter.method {
            Method::Singlora => true,
            Method::Lora => self.adapter.init_b == Init::Zeros,
            _ => false,
        }
    }

    fn knobs(&self) -> Option<Knobs> {
        let b = self.init_exponent()?;
        self.covered().then(|| Knobs {
            adam: self.adam_like(),
            a_in: self.shape.a_in(),
            a_out: self.shape.a_out(),
            mu: self.shape.mu(),
            b,
            gamma: self.adapter.multiplier_exponent * self.knob_exponent(),
            rho: self.rho(),
            c: self.c(Role::SingleA),
            c_a: self.c(Role::LoraA),
            c_b: self.c(Role::LoraB),
        })
    }

    /// SingLoRA's initial output terms (none for LoRA, whose $B_0 = 0$).
    fn init_output(&self, k: &Knobs) -> Vec<Term> {
        if self.adapter.method != Method::Singlora {
            return Vec::new();
        }
        let s = singlora(k);
        let shared = k.a_in.min(k.a_out);
        vec![
            ("off-diagonal", -k.gamma - k.b + s.p0),
            ("diagonal", -k.gamma - 2.0 * k.b + (shared - k.a_out) / 2.0),
        ]
    }

    /// The balanced output change's terms (Adam) or the growth rate (SGD): what c* is the root of.
    fn output_lines(&self, k: &Knobs) -> Vec<Term> {
        match (self.adapter.method, k.adam) {
            (Method::Singlora, true) => {
                let s = singlora(k);
                vec![s.t1, s.t2, s.t3]
            }
            (Method::Singlora, false) => vec![("κ", k.kappa(k.c))],
            (_, true) => {
                let l = lora(k);
                vec![l.d2, l.aligned]
            }
            (_, false) => vec![("√(κ_A·κ_B)", (k.kappa(k.c_a) + k.kappa(k.c_b)) / 2.0)],
        }
    }

    /// Every prediction the engine can make for this setting.
    pub fn predictions(&self) -> Vec<Prediction> {
        let Some(k) = self.knobs() else {
            return Vec::new();
        };
        let rate = match self.adapter.method {
            Method::Singlora => Role::SingleA,
            _ => Role::LoraA,
        };
        let mut out = Sink {
            out: Vec::new(),
            rate: k.adam.then_some(rate),
        };
        let init = self.init_output(&k);
        match self.adapter.method {
            Method::Singlora => self.singlora_predictions(&k, &init, &mut out),
            _ => self.lora_predictions(&k, &mut out),
        }
        out.out
    }

    fn singlora_predictions(&self, k: &Knobs, init: &[Term], out: &mut Sink) {
        let s = singlora(k);
        let t0 = SingInit::of(k, &s);
        let with_init: Vec<Term> = init.iter().copied().chain([s.t1, s.t2, s.t3]).collect();
        t0.predict(init, &s, out);
        singlora_first_step(k, &s, out);
        if k.adam {
            singlora_balanced_adam(k, &s, &t0, &with_init, init.len(), out);
        } else {
            singlora_balanced_sgd(k, &s, &t0, &with_init, out);
        }
    }

    fn lora_predictions(&self, k: &Knobs, out: &mut Sink) {
        let t = LoraTerms::of(k);
        t.predict_init(out);
        t.predict_first_step(k, out);
        if k.adam {
            t.predict_balanced_adam(k, out);
        } else {
            t.predict_balanced_sgd(k, out);
        }
    }

    /// The stable learning-rate exponent c* of one shared rate, with how it was found: the largest c at which the
    /// balanced output change (Adam) or the growth rate κ (SGD) does not vanish. The exponent of each line at c is
    /// $e(0) + c\,(e(1) - e(0))$, so its root is $e(0)/(e(0) - e(1))$ and c* is the largest root. `None` when the engine
    /// does not cover the adapter or its initial output already explodes.
    pub fn stable_lr_exponent(&self) -> Option<(f64, String)> {
        let k = self.knobs()?;
        let init = self.init_output(&k);
        let e_init = dominant(&init).0;
        if e_init > EPS {
            return None;
        }
        let (at0, at1) = (
            self.output_lines(&k.shared(0.0)),
            self.output_lines(&k.shared(1.0)),
        );
        let (name, root) = at0
            .iter()
            .zip(&at1)
            .filter(|(a, b)| b.1 < a.1 - EPS)
            .map(|(a, b)| (a.0, a.1 / (a.1 - b.1) + 0.0))
            .fold(
                ("", f64::NEG_INFINITY),
                |best, x| {
                    if x.1 > best.1 {
                        x
                    } else {
                        best
                    }
                },
            );
        if !root.is_finite() {
            return None;
        }
        let what = if k.adam {
            "Adam: largest c with a non-vanishing balanced Δz (S, NV)"
        } else {
            "SGD: κ = Θ(1) (with a Θ(ln n) escape delay)"
        };
        let init = if init.is_empty() {
            String::new()
        } else {
            format!("; initial output {e_init:+.2} ≤ 0")
        };
        Some((root, format!("{what}: {name} = 0 at c = {root:.2}{init}")))
    }

    /// The regime verdict at the configured rates: stable (S: balanced Δz = O(1)), non-vanishing (NV: Θ(1)), and
    /// LoRA+-strict (S+: also the bottleneck O(1)), or SGD's growth-rate verdict. `None` when not covered.
    pub fn verdict(&self) -> Option<String> {
        let k = self.knobs()?;
        let (e_init, _) = dominant(&self.init_output(&k));
        let init = if e_init > EPS {
            format!("initial output explodes (n^{e_init:+.2}); ")
        } else {
            String::new()
        };
        if !k.adam {
            let kappa = self
                .predictions()
                .into_iter()
                .find(|p| p.quantity == Q::Kappa)?;
            return Some(format!("{init}{}", kappa.conditions));
        }
        let find = |q: Quantity| {
            self.predictions()
                .into_iter()
                .find(|p| p.quantity == q && p.regime == Regime::Balanced)
                .map(|p| p.exponent)
        };
        let (dz, bottleneck) = (find(Q::DzRms)?, find(Q::BottleneckRms)?);
        let output = if dz > EPS {
            format!("explodes (balanced Δz n^{dz:+.2})")
        } else if dz < -EPS {
            format!("stable but vanishing (balanced Δz n^{dz:+.2})")
        } else {
            "efficient: S and NV (balanced Δz Θ(1))".to_string()
        };
        let strict = if bottleneck > EPS {
            format!("S+ fails (bottleneck n^{bottleneck:+.2})")
        } else {
            "S+ holds (bottleneck O(1))".to_string()
        };
        Some(format!("{init}{output}; {strict}"))
    }
}

/// SingLoRA's terms at t = 0 that the balanced regime restates: the gradient's two terms, ‖A₀‖ and ΔW's.
struct SingInit {
    grad: [Term; 2],
    norm: [Term; 1],
    dw: [Term; 1],
    /// ΔW's exponent before the factors' own scales, −γ + (a_in + a_out)/2: A₀A₀ᵀ adds 2·(−b), A₀Dᵀ adds −b + u, DDᵀ
    /// adds 2u.
    e_dw: f64,
}

impl SingInit {
    fn of(k: &Knobs, s: &Sing) -> Self {
        let e_dw = -k.gamma + (k.a_in + k.a_out) / 2.0;
        Self {
            grad: [("g·(A₀ᵀh)ᵀ", k.sg() + s.p0), ("h·(A₀ᵀg)ᵀ", k.sh() + s.q0)],
            norm: [("A₀", k.mu / 2.0 - k.b)],
            dw: [("A₀A₀ᵀ", e_dw - 2.0 * k.b)],
            e_dw,
        }
    }

    /// The predictions at initialisation (`init`: the adapter's initial output terms).
    fn predict(&self, init: &[Term], s: &Sing, out: &mut Sink) {
        self.restate(Regime::Init, (init, ("Aᵀh", s.p0)), INIT, out);
    }

    /// These terms' predictions in `regime` under `conditions`, for the adapter's output (`output`'s terms) and its
    /// bottleneck (`output`'s second member), ‖A‖, the gradient and ΔW: at t = 0, and again wherever the initial
    /// exponents still hold (SGD at fixed t while κ does not grow).
    fn restate(
        &self,
        regime: Regime,
        (output, bottleneck): (&[Term], Term),
        conditions: &str,
        out: &mut Sink,
    ) {
        out.add(regime, Q::UpdateOutRms, output, conditions);
        out.add(regime, Q::BottleneckRms, &[bottleneck], conditions);
        out.add(regime, Q::ParamFro(Role::SingleA), &self.norm, conditions);
        out.add(regime, Q::GradFro(Role::SingleA), &self.grad, conditions);
        out.add(regime, Q::DwOp, &self.dw, conditions);
        out.add(regime, Q::DwFro, &self.dw, conditions);
    }
}

/// SingLoRA after one step: the output change's terms T1–T3.
///
/// The adapter's own output at t = 1 is the initial output plus an O(η₀) change: not a first-step statement, so it is
/// predicted at t = 0 and in the balanced regime only.
fn singlora_first_step(k: &Knobs, s: &Sing, out: &mut Sink) {
    use Regime::FirstStep;
    let base = if k.adam { FIRST_ADAM } else { FIRST_SGD };
    let first_order = s.t1.1.max(s.t2.1);
    let gap = s.t3.1 - first_order;
    let first = if gap > EPS {
        format!(
            "{base}; T3 is second order in η₀ and leads max(T1, T2) = {first_order:+.2} only by n^{gap:.2}: \
             measured slopes follow max(T1, T2) until η₀·n^{gap:.2} ≫ 1"
        )
    } else {
        base.to_string()
    };
    let steps = [s.t1, s.t2, s.t3];
    for q in [Q::DzRms, Q::DzCumRms] {
        out.add_staged(FirstStep, q, &steps, &[0, 0, 1], &first);
    }
    out.add(FirstStep, Q::TermRms(Split::T1), &[s.t1], base);
    out.add(FirstStep, Q::TermRms(Split::T2), &[s.t2], base);
    out.add(FirstStep, Q::TermRms(Split::T3), &[s.t3], base);
}

/// SingLoRA's balanced regime under SGD: the growth rate κ's verdict, and while κ does not grow with n the
/// first-step and initial exponents hold at any fixed t (`with_init`: the initial output terms, then T1–T3).
fn singlora_balanced_sgd(k: &Knobs, s: &Sing, t0: &SingInit, with_init: &[Term], out: &mut Sink) {
    use Regime::Balanced;
    let e_kappa = k.kappa(k.c);
    let e_u = -k.gamma - 2.0 * k.b + (k.a_in - k.a_out) / 2.0;
    let verdict = sgd_verdict(e_kappa, e_u);
    out.add(
        Balanced,
        Q::Kappa,
        &[("κ = η·s·‖g‖·‖h‖", e_kappa)],
        &verdict,
    );
    if e_kappa.is_nan() || e_kappa > EPS {
        return; // κ grows with n (or is undefined): no fixed-t statement
    }
    let steps = [s.t1, s.t2, s.t3];
    for q in [Q::DzRms, Q::DzCumRms] {
        out.add(Balanced, q, &steps, FIXED_T_SGD);
    }
    out.add(Balanced, Q::TermRms(Split::T1), &[s.t1], FIXED_T_SGD);
    out.add(Balanced, Q::TermRms(Split::T2), &[s.t2], FIXED_T_SGD);
    out.add(Balanced, Q::TermRms(Split::T3), &[s.t3], FIXED_T_SGD);
    t0.restate(Balanced, (with_init, ("A₀ᵀh", s.p0)), FIXED_T_SGD, out);
}

/// SingLoRA's balanced regime under Adam: every quantity as the initial terms plus the accumulated change D's, each
/// term tagged with its order in the rate (`with_init`: the `n_init` initial output terms, then T1–T3).
fn singlora_balanced_adam(
    k: &Knobs,
    s: &Sing,
    t0: &SingInit,
    with_init: &[Term],
    n_init: usize,
    out: &mut Sink,
) {
    let (g, b, u) = (k.gamma, k.b, s.u_out);
    let dw = t0.e_dw;
    for q in [Q::DzRms, Q::DzCumRms] {
        out.balanced_staged(q, &[s.t1, s.t2, s.t3], &[0, 0, 1]);
    }
    let t1 = [("ΔA_out·(A₀ᵀh)", s.t1.1), ("ΔA_out·(Dᵀh)", -g + u + s.v_in)];
    let t2 = [
        ("A₀_out·(ΔA_inᵀh)", s.t2.1),
        ("D_out·(ΔA_inᵀh)", -g + u + s.v_in),
    ];
    out.balanced_staged(Q::TermRms(Split::T1), &t1, &[0, 1]);
    out.balanced_staged(Q::TermRms(Split::T2), &t2, &[0, 1]);
    out.balanced(Q::TermRms(Split::T3), &[s.t3]);
    // The initial output carries no rate, T1 and T2 one accumulated change, T3 two.
    let orders: Vec<u32> = (0..n_init).map(|_| 0).chain([1, 1, 2]).collect();
    out.balanced_staged(Q::UpdateOutRms, with_init, &orders);
    let bottleneck = [("A₀ᵀh", s.p0), ("Dᵀh", s.v_in)];
    out.balanced_staged(Q::BottleneckRms, &bottleneck, &[0, 1]);
    let norm = [t0.norm[0], ("D", k.mu / 2.0 + u)];
    out.balanced_staged(Q::ParamFro(Role::SingleA), &norm, &[0, 1]);
    let grad = [
        t0.grad[0],
        ("g·(Dᵀh)ᵀ", k.sg() + s.v_in),
        t0.grad[1],
        ("h·(Dᵀg)ᵀ", k.sh() + s.w_out),
    ];
    out.balanced_staged(Q::GradFro(Role::SingleA), &grad, &[0, 1, 0, 1]);
    let dw_terms = [t0.dw[0], ("A₀Dᵀ", dw - b + u), ("DDᵀ", dw + 2.0 * u)];
    for q in [Q::DwOp, Q::DwFro] {
        out.balanced_staged(q, &dw_terms, &[0, 1, 2]);
    }
}

/// LoRA's terms that more than one regime states (B₀ = 0, so the first step is ΔB's alone).
struct LoraTerms {
    l: Lora,
    /// ‖A₀‖.
    norm_a: Term,
    /// B's gradient at t = 0.
    grad_b: Term,
    /// ‖ΔB‖ after one step.
    norm_b: Term,
    /// A's gradient once B ≠ 0.
    grad_a: Term,
    /// ΔW = B·A₀.
    dw: Term,
    /// The output change after one step, ΔB·(A₀h).
    d2: [Term; 1],
}

impl LoraTerms {
    fn of(k: &Knobs) -> Self {
        let l = lora(k);
        let g = k.gamma;
        let norm_a = ("A₀", k.a_in / 2.0 - k.b);
        Self {
            norm_a,
            grad_b: ("s·g(A₀h)ᵀ", k.sg() + l.z0),
            norm_b: ("ΔB", k.a_out / 2.0 + l.u_b),
            grad_a: ("s·(Bᵀg)hᵀ", -g + l.u_b + k.a_out - k.rho + k.a_in / 2.0),
            dw: ("B·A₀", -g + k.a_out / 2.0 + l.u_b + norm_a.1),
            d2: [("δ² = ΔB·(Ah) only (B₀ = 0)", l.d2.1)],
            l,
        }
    }

    fn predict_init(&self, out: &mut Sink) {
        use Regime::Init;
        out.add(Init, Q::BottleneckRms, &[("Ah", self.l.z0)], INIT);
        out.add(Init, Q::ParamFro(Role::LoraA), &[self.norm_a], INIT);
        out.add(Init, Q::GradFro(Role::LoraB), &[self.grad_b], INIT);
    }

    fn predict_first_step(&self, k: &Knobs, out: &mut Sink) {
        use Regime::FirstStep;
        let first = if k.adam { FIRST_ADAM_LORA } else { FIRST_SGD };
        for q in [
            Q::DzRms,
            Q::DzCumRms,
            Q::TermRms(Split::Delta2),
            Q::UpdateOutRms,
        ] {
            out.add(FirstStep, q, &self.d2, first);
        }
        out.add(FirstStep, Q::ParamFro(Role::LoraB), &[self.norm_b], first);
        out.add(FirstStep, Q::GradFro(Role::LoraA), &[self.grad_a], first);
        out.add(FirstStep, Q::DwOp, &[self.dw], first);
        out.add(FirstStep, Q::DwFro, &[self.dw], first);
    }

    /// Under SGD: the growth rate's verdict, and while it does not grow with n the first step's exponents at any
    /// fixed t.
    fn predict_balanced_sgd(&self, k: &Knobs, out: &mut Sink) {
        use Regime::Balanced;
        let (e_a, e_b) = (k.kappa(k.c_a), k.kappa(k.c_b));
        let e_kappa = (e_a + e_b) / 2.0;
        let e_u = -k.gamma + e_b - 2.0 * k.b + (k.a_in - k.a_out) / 2.0;
        let verdict = format!(
            "q₀ = 0, step 1 seeds q₁ = κ_B·p₀; {}",
            sgd_verdict(e_kappa, e_u)
        );
        out.add(Balanced, Q::Kappa, &[("√(κ_A·κ_B)", e_kappa)], &verdict);
        if e_kappa.is_nan() || e_kappa > EPS {
            return; // κ grows with n (or is undefined): no fixed-t statement
        }
        for q in [Q::DzRms, Q::DzCumRms, Q::UpdateOutRms] {
            out.add(Balanced, q, &self.d2, FIXED_T_SGD);
        }
        out.add(
            Balanced,
            Q::BottleneckRms,
            &[("A₀h", self.l.z0)],
            FIXED_T_SGD,
        );
        out.add(
            Balanced,
            Q::ParamFro(Role::LoraB),
            &[self.norm_b],
            FIXED_T_SGD,
        );
    }

    /// Under Adam: every term carries B; the aligned ones also the accumulated change D of A, hence order 1 in η_A·t.
    fn predict_balanced_adam(&self, k: &Knobs, out: &mut Sink) {
        let (l, g) = (&self.l, k.gamma);
        let dz = [l.d2, l.aligned];
        for q in [Q::DzRms, Q::DzCumRms, Q::UpdateOutRms] {
            out.balanced_staged(q, &dz, &[0, 1]);
        }
        let z = [("A₀h", l.z0), ("ΔA·h", l.u_a + k.a_in)];
        let delta1 = [("B·(ΔA·h)", l.aligned.1)];
        let delta3 = [("ΔB·(ΔA·h)", l.aligned.1)];
        out.balanced(Q::TermRms(Split::Delta1), &delta1);
        out.balanced_staged(Q::TermRms(Split::Delta2), &dz, &[0, 1]);
        out.balanced(Q::TermRms(Split::Delta3), &delta3);
        out.balanced_staged(Q::BottleneckRms, &z, &[0, 1]);
        out.balanced(Q::ParamFro(Role::LoraB), &[("B", self.norm_b.1)]);
        let norm_a = [self.norm_a, ("D", k.a_in / 2.0 + l.u_a)];
        out.balanced_staged(Q::ParamFro(Role::LoraA), &norm_a, &[0, 1]);
        out.balanced(Q::GradFro(Role::LoraA), &[self.grad_a]);
        let grad_b = [self.grad_b, ("s·g(ΔA·h)ᵀ", k.sg() + z[1].1)];
        out.balanced_staged(Q::GradFro(Role::LoraB), &grad_b, &[0, 1]);
        let dw = [
            self.dw,
            ("B·D", -g + k.a_out / 2.0 + l.u_b + k.a_in / 2.0 + l.u_a),
        ];
        for q in [Q::DwOp, Q::DwFro] {
            out.balanced_staged(q, &dw, &[0, 1]);
        }
    }
}
