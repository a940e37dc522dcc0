//! The factored weight update: the one abstraction every adapter is built from.
//!
//! An [`Update`] owns the trainable factors of an *unscaled* update $\widetilde{\Delta W} \in \mathbb R^{d_{out}\times
//! d_{in}}$; the layer ([`crate::adapters::AdaptedLinear`]) multiplies it by $c = s\,u$. An update never forms
//! $\widetilde{\Delta W}$ in its forward or backward pass: it offers the products with it and the gradient of its
//! factors for an upstream gradient, in factored form.
//!
//! Conventions (row-major batch, THEORY §7): $X \in \mathbb R^{b\times d_{in}}$, $Y = X W^\top$,
//! $G = \partial L/\partial Y \in \mathbb R^{b\times d_{out}}$, $G_W = G^\top X$.

use ndarray::{
    Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Axis,
};

use crate::linalg::scale_rows;
use crate::scalar::Scalar;

/// The optimiser role of a trainable tensor: what LoRA+ and per-group learning rates key on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// LoRA's A (input side, r × d_in).
    LoraA,
    /// LoRA's B (output side, d_out × r, zero-initialised; LR × ratio under LoRA+).
    LoraB,
    /// SingLoRA's single A (m × r).
    SingleA,
    /// A dense ΔW (full fine-tuning) or a frozen-base weight trained in full.
    Dense,
    /// DoRA's magnitude vector (1-D).
    Magnitude,
    /// A bias (1-D).
    Bias,
}

impl Role {
    /// The name used in configs (`lr_exponent.lora_b = 0`, …).
    pub fn name(self) -> &'static str {
        match self {
            Role::LoraA => "lora_a",
            Role::LoraB => "lora_b",
            Role::SingleA => "singlora_a",
            Role::Dense => "dense",
            Role::Magnitude => "magnitude",
            Role::Bias => "bias",
        }
    }

    /// The tensor's name, PEFT's where PEFT has one (`lora_A.weight`, `lora_B.weight`, `lora_magnitude_vector`).
    pub fn tensor_name(self) -> &'static str {
        match self {
            Role::LoraA => "lora_A.weight",
            Role::LoraB => "lora_B.weight",
            Role::SingleA => "singlora_A.weight",
            Role::Dense => "delta.weight",
            Role::Magnitude => "lora_magnitude_vector",
            Role::Bias => "bias",
        }
    }

    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::LoraA,
        Role::LoraB,
        Role::SingleA,
        Role::Dense,
        Role::Magnitude,
        Role::Bias,
    ];

    /// Whether tensors of this role are 1-D (PEFT's LoRA+ puts every 1-D tensor in B's group).
    pub fn is_one_dimensional(self) -> bool {
        matches!(self, Role::Magnitude | Role::Bias)
    }
}

/// A term of the per-step decomposition of an update's output change (THEORY §5.2): LoRA's $\delta^1, \delta^2,
/// \delta^3$ and SingLoRA's $T_1, T_2, T_3$.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Term {
    /// LoRA $\delta^1 = X\Delta A^\top B_{t-1}^\top$ (the A step through the old B).
    Delta1,
    /// LoRA $\delta^2 = XA_{t-1}^\top\Delta B^\top$ (the B step through the old A).
    Delta2,
    /// LoRA $\delta^3 = X\Delta A^\top\Delta B^\top$ (second order).
    Delta3,
    /// SingLoRA $T_1 = (XA_{t-1,in})\Delta A_{out}^\top$.
    T1,
    /// SingLoRA $T_2 = (X\Delta A_{in})A_{t-1,out}^\top$.
    T2,
    /// SingLoRA $T_3 = (X\Delta A_{in})\Delta A_{out}^\top$ (second order).
    T3,
}

impl Term {
    /// The term's name (`delta1` … `T3`).
    pub fn name(self) -> &'static str {
        match self {
            Term::Delta1 => "delta1",
            Term::Delta2 => "delta2",
            Term::Delta3 => "delta3",
            Term::T1 => "T1",
            Term::T2 => "T2",
            Term::T3 => "T3",
        }
    }

    /// Every term.
    pub const ALL: [Term; 6] = [
        Term::Delta1,
        Term::Delta2,
        Term::Delta3,
        Term::T1,
        Term::T2,
        Term::T3,
    ];
}

/// Name, role and shape of one trainable tensor. Names are PEFT's where PEFT has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// e.g. `lora_A.weight`.
    pub name: &'static str,
    /// Its optimiser role.
    pub role: Role,
    /// Its logical shape (1-D tensors have one entry).
    pub shape: Vec<usize>,
}

/// DoRA's row terms of an update against the base $W_0$, from which the row norms of $V = W_0 + c\widetilde{\Delta W}$
/// follow without forming $V$ (see [`row_norms_sq`]):
/// $$\lVert V_i\rVert^2 = \lVert W_{0,i}\rVert^2 + 2c\,\langle W_{0,i}, \widetilde{\Delta W}_i\rangle + c^2\lVert\widetilde{\Delta W}_i\rVert^2.$$
/// LoRA ($\widetilde{\Delta W} = BA$): $\langle W_{0,i}, (BA)_i\rangle = \sum_k B_{ik}(W_0A^\top)_{ik}$ and
/// $\lVert(BA)_i\rVert^2 = \sum_k (B\,AA^\top)_{ik}B_{ik}$; SingLoRA ($A_{out}A_{in}^\top$): the same with
/// $W_0A_{in}$, $A_{out}$ and the Gram $A_{in}^\top A_{in}$. One $d_{out}\times d_{in}$ by $d_{in}\times r$ product.
pub struct RowTerms<T: Scalar> {
    /// $\langle W_{0,i}, \widetilde{\Delta W}_i\rangle$ for every row i.
    pub cross: Array1<T>,
    /// $\lVert\widetilde{\Delta W}_i\rVert^2$ for every row i.
    pub sq: Array1<T>,
    /// The base times the update's input-side factor ($W_0A^\top$, $W_0A_{in}$; $d_{out}\times r$), reused by
    /// [`Update::grad_rows`]; `None` for updates without one.
    pub w0_side: Option<Array2<T>>,
}

/// $\sum_k X_{ik}Y_{ik}$ for every row i.
#[track_caller]
pub fn row_dots<T: Scalar>(x: ArrayView2<'_, T>, y: ArrayView2<'_, T>) -> Array1<T> {
    assert_eq!(x.dim(), y.dim(), "row_dots: shapes differ");
    (&x * &y).sum_axis(Axis(1))
}

/// $\lVert V_i\rVert^2 = \lVert W_{0,i}\rVert^2 + 2c\langle W_{0,i}, \widetilde{\Delta W}_i\rangle +
/// c^2\lVert\widetilde{\Delta W}_i\rVert^2$ from the base's squared row norms `w0_sq` and the terms (clamped at 0,
/// which round-off could cross only where $V_i \approx 0$, i.e. on DoRA's ε floor anyway).
#[track_caller]
pub fn row_norms_sq<T: Scalar>(w0_sq: ArrayView1<'_, T>, terms: &RowTerms<T>, c: T) -> Array1<T> {
    assert_eq!(w0_sq.len(), terms.cross.len(), "row_norms_sq: rows differ");
    let two_c = T::of(2.0) * c;
    let mut v = w0_sq.to_owned();
    v.zip_mut_with(&terms.cross, |v, &x| *v += two_c * x);
    v.zip_mut_with(&terms.sq, |v, &s| *v = (*v + c * c * s).max(T::zero()));
    v
}

/// A factored update $\widetilde{\Delta W}$ and the backward pass of its factors.
pub trait Update<T: Scalar>: Send + Sync {
    /// Input dimension $d_{in}$.
    fn d_in(&self) -> usize;
    /// Output dimension $d_{out}$.
    fn d_out(&self) -> usize;

    /// $\widetilde{\Delta W}$ materialised ($d_{out}\times d_{in}$), for inspection, merging and dense tests only.
    fn delta_w(&self) -> Array2<T>;

    /// The update itself when it is a dense matrix (full fine-tuning), which the layer then merges into its base
    /// ($W_0 + c\widetilde{\Delta W}$, one product per pass instead of two); `None` for factored updates.
    fn dense(&self) -> Option<ArrayView2<'_, T>> {
        None
    }

    /// $X \widetilde{\Delta W}^\top$ ($b\times d_{out}$) in factored form.
    fn apply(&self, x: ArrayView2<'_, T>) -> Array2<T>;

    /// $G\, \widetilde{\Delta W}$ ($b\times d_{in}$) in factored form: the update's share of $\partial L/\partial X$.
    fn apply_adjoint(&self, g: ArrayView2<'_, T>) -> Array2<T>;

    /// $Y \mathrel{+}= c\,X\widetilde{\Delta W}^\top$ in place (the adapter's share of a layer's output, added to
    /// the base output without a temporary of the output's size). The default rounds as `Y + apply(X)·c`; low-rank
    /// updates override it with one accumulating product from their bottleneck.
    fn apply_acc(&self, x: ArrayView2<'_, T>, c: T, mut y: ArrayViewMut2<'_, T>) {
        y.scaled_add(c, &self.apply(x));
    }

    /// $G_X \mathrel{+}= c\,G\widetilde{\Delta W}$ in place (the update's share of $\partial L/\partial X$); the
    /// counterpart of [`Update::apply_acc`].
    fn apply_adjoint_acc(&self, g: ArrayView2<'_, T>, c: T, mut gx: ArrayViewMut2<'_, T>) {
        gx.scaled_add(c, &self.apply_adjoint(g));
    }

    /// [`Update::grad`]`(x, g)` and [`Update::apply_adjoint_acc`]`(g, c, gx)` in one call, so an update can share the
    /// products both need (low-rank updates compute their bottleneck $GA_{out}$ or $GB$ once). Bit for bit the two
    /// calls.
    fn grad_and_adjoint_acc(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        c: T,
        gx: ArrayViewMut2<'_, T>,
    ) -> Vec<Array2<T>> {
        self.apply_adjoint_acc(g, c, gx);
        self.grad(x, g)
    }

    /// $\partial \langle G, X\widetilde{\Delta W}^\top\rangle / \partial\theta$ for every factor θ, in the order of
    /// [`Update::param_info`]: the chain rule through $\widetilde{\Delta W}$ for $G_W = G^\top X$ without forming it.
    fn grad(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Vec<Array2<T>>;

    /// The same chain rule for a dense $G_W$ (needed by DoRA's projection term).
    fn grad_dense(&self, g_w: ArrayView2<'_, T>) -> Vec<Array2<T>>;

    /// DoRA's [`RowTerms`] against the base `w0`. The default forms $\widetilde{\Delta W}$; low-rank updates override
    /// it with their factored forms.
    fn row_terms(&self, w0: ArrayView2<'_, T>) -> RowTerms<T> {
        let d = self.delta_w();
        RowTerms {
            cross: row_dots(w0, d.view()),
            sq: row_dots(d.view(), d.view()),
            w0_side: None,
        }
    }

    /// [`Update::grad_dense`] of $\mathrm{diag}(e)\,(W_0 + c\widetilde{\Delta W})$ (DoRA's projection term), given
    /// the [`RowTerms`] of the same state. The default forms the dense matrix; low-rank updates override it with one
    /// $r\times d_{out}$ by $d_{out}\times d_{in}$ product.
    fn grad_rows(
        &self,
        e: ArrayView1<'_, T>,
        w0: ArrayView2<'_, T>,
        c: T,
        _terms: &RowTerms<T>,
    ) -> Vec<Array2<T>> {
        let mut v = self.delta_w();
        v.zip_mut_with(&w0, |d, &w| *d = w + c * *d);
        self.grad_dense(scale_rows(e, v.view()).view())
    }

    /// Names, roles and shapes of the factors.
    fn param_info(&self) -> Vec<ParamInfo>;

    /// The factors, read-only.
    fn params(&self) -> Vec<ArrayViewD<'_, T>>;

    /// The factors, mutable (for optimisers and `--state random`).
    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>>;

    /// The rank-r bottleneck on a batch, if the update has one: $XA^\top$ (LoRA), $XA_{in}$ (SingLoRA).
    fn bottleneck(&self, _x: ArrayView2<'_, T>) -> Option<Array2<T>> {
        None
    }

    /// The per-step decomposition of $X(\widetilde{\Delta W}_t - \widetilde{\Delta W}_{t-1})^\top$ given the factors
    /// of step $t-1$ (in [`Update::params`] order): LoRA's $\delta^1, \delta^2, \delta^3$, SingLoRA's $T_1, T_2, T_3$
    /// (THEORY §5.2). Empty for updates without one.
    fn decompose(&self, _prev: &[ArrayD<T>], _x: ArrayView2<'_, T>) -> Vec<(Term, Array2<T>)> {
        Vec::new()
    }

    /// $\lVert\widetilde{\Delta W}\rVert_F^2$; low-rank updates override this with an $r\times r$ formula.
    fn frobenius_sq(&self) -> f64 {
        self.delta_w().iter().map(|v| v.f64() * v.f64()).sum()
    }

    /// Number of trainable scalars.
    fn num_trainable(&self) -> usize {
        self.param_info()
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }
}

/// Turns 2-D gradients into the dynamic-dimension form the optimisers consume.
pub fn into_dyn<T: Scalar>(grads: Vec<Array2<T>>) -> Vec<ArrayD<T>> {
    grads.into_iter().map(|g| g.into_dyn()).collect()
}

/// A 2-D view of a tensor stored with dynamic dimension (every update factor is 2-D).
#[track_caller]
pub fn as2<T: Scalar>(a: &ArrayD<T>) -> ndarray::ArrayView2<'_, T> {
    a.view().into_dimensionality().expect("a 2-D factor")
}
