//! The toy's infinite-width limit.
//!
//! **LoRA+'s scalar toy under SGD on one input** (THEORY §3.1, §5.1): $f(x) = W^*x + s\,b\,(a^\top x)$, loss
//! $\tfrac12(f-y)^2$, $U = f - y$. With $p = a^\top x$ and $q = \lVert x\rVert^2$, SGD at rates $\eta_a, \eta_b$ reads
//! $$p \leftarrow p - \eta_a s\,U\,b\,q,\qquad b \leftarrow b - \eta_b s\,U\,p,$$
//! (both from the pre-step values): a two-dimensional recursion whose only width dependence is $\eta_a q$. Under
//! sign-SGD (Adam with ε → 0 and no moments) the same holds with $q = \lVert x\rVert_1$:
//! $$p \leftarrow p - \eta_a\,\mathrm{sign}(sUb)\,\lVert x\rVert_1,\qquad b \leftarrow b - \eta_b\,\mathrm{sign}(sUp),$$
//! and $\lVert x\rVert_1/n \to \mathbb E|x_i|$ ($\sqrt{2/\pi}$ for Gaussian coordinates). Under
//! LoRA+'s scaling $\eta_a = \tilde\eta_a/n$ and $\lVert x\rVert^2/n \to 1$, so the $n\to\infty$ limit is the same
//! recursion with $\eta_a q = \tilde\eta_a$, driven by the $O(1)$ overlaps $W^*x$, $p_0 = a_0^\top x$ and $b_0$. A
//! width-n network *coupled* to the limit (inputs scaled to $\lVert x\rVert^2 = n$, the same overlaps) follows it
//! exactly; `tests/limit.rs` checks this to round-off through the full adapter, optimiser and training-loop code.

use super::LimitRule;
use crate::optim::sign;

/// The limit state's inputs: the O(1) overlaps, the rule and the rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToyLimit {
    /// SGD or sign-SGD.
    pub rule: LimitRule,
    /// $W^*x$.
    pub w_x: f64,
    /// Target y.
    pub y: f64,
    /// $p_0 = a_0^\top x$.
    pub p0: f64,
    /// $b_0$.
    pub b0: f64,
    /// Multiplier s.
    pub s: f64,
    /// $\eta_a q$: $\eta_a\lVert x\rVert^2$ under SGD, $\eta_a\lVert x\rVert_1$ under sign-SGD (in the limit
    /// $\tilde\eta_a\,\mathbb E x_i^2$ or $\tilde\eta_a\,\mathbb E|x_i|$ with $\eta_a = \tilde\eta_a/n$).
    pub eta_a_q: f64,
    /// $\eta_b$.
    pub eta_b: f64,
}

/// One point of a limit trajectory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToyState {
    /// $b_t$.
    pub b: f64,
    /// $p_t = a_t^\top x$.
    pub p: f64,
    /// $f_t(x)$.
    pub f: f64,
    /// $\tfrac12(f_t - y)^2$.
    pub loss: f64,
}

impl ToyLimit {
    /// States at t = 0…steps.
    pub fn trajectory(&self, steps: u64) -> Vec<ToyState> {
        let (mut b, mut p) = (self.b0, self.p0);
        let mut out = Vec::with_capacity(steps as usize + 1);
        for t in 0..=steps {
            let f = self.w_x + self.s * b * p;
            let u = f - self.y;
            out.push(ToyState {
                b,
                p,
                f,
                loss: 0.5 * u * u,
            });
            if t == steps {
                break;
            }
            let (gb, gp) = (self.s * u * p, self.s * u * b);
            let (step_p, step_b) = match self.rule {
                LimitRule::Sgd => (gp, gb),
                LimitRule::Sign => (sign(gp), sign(gb)),
            };
            p -= self.eta_a_q * step_p;
            b -= self.eta_b * step_b;
        }
        out
    }
}
