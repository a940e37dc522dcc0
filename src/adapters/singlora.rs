//! SingLoRA: one trainable $A \in \mathbb R^{m\times r}$, $m = \max(d_{in}, d_{out})$, and the paper's truncation
//! rule for non-square layers,
//!
//! $$\widetilde{\Delta W} = A_{out} A_{in}^\top = (AA^\top)_{[:d_{out},\,:d_{in}]},\qquad A_{out} = A_{[:d_{out}]},\;
//! A_{in} = A_{[:d_{in}]}.$$
//!
//! One rule for every shape (square, tall, wide), so the transposed-update bug B1 cannot exist. The layer multiplies by
//! $c = s\,u(t)$.
//!
//! The backward returns the step direction of A under the role split λ (`Symmetric::split`, THEORY O10): λ = 1
//! (the default) is the gradient, any other λ is SingLoRA's analogue of LoRA+'s ratio $\eta_B/\eta_A$.

use ndarray::{
    s, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD,
};

use super::update::{as2, row_dots, ParamInfo, Role, RowTerms, Term, Update};
use crate::linalg::{mm, mm_acc, mm_nt, mm_tn, scale_rows};
use crate::scalar::Scalar;

/// SingLoRA's single factor and the layer shape it serves.
pub struct Symmetric<T: Scalar> {
    /// $A \in \mathbb R^{m\times r}$ (`singlora_A.weight`).
    pub a: Array2<T>,
    d_in: usize,
    d_out: usize,
    /// λ, the weight of the output role in the step direction (`Symmetric::split`; 1: the gradient).
    ratio: T,
}

impl<T: Scalar> Symmetric<T> {
    /// Wraps `a` for a `d_out × d_in` layer; `a` must have `max(d_in, d_out)` rows.
    #[track_caller]
    pub fn new(a: Array2<T>, d_in: usize, d_out: usize) -> Self {
        assert_eq!(
            a.nrows(),
            d_in.max(d_out),
            "SingLoRA: A has {} rows, need m = max(d_in={d_in}, d_out={d_out})",
            a.nrows()
        );
        Self {
            a,
            d_in,
            d_out,
            ratio: T::one(),
        }
    }

    /// Sets the role split λ (`adapter.role_ratio`, see `Symmetric::split`).
    pub fn with_ratio(mut self, ratio: T) -> Self {
        self.ratio = ratio;
        self
    }

    /// The role split λ.
    pub fn ratio(&self) -> T {
        self.ratio
    }

    /// The one place where the two gradient roles of A are combined into its step direction.
    ///
    /// With $\Delta W = c\,A_{out}A_{in}^\top$ and $G_W = \partial L/\partial \widetilde{\Delta W}$, the chain rule through
    /// the two copies of A gives
    /// $$\partial L/\partial A = c\,\big(\mathrm{pad}(G_WA_{in}) + \mathrm{pad}(G_W^\top A_{out})\big),$$
    /// `pad` writing a block into the first rows of an $m\times r$ zero matrix: the first term ($d_{out}$ rows) is A's
    /// *output role* (A acting as LoRA's B, $\partial L/\partial A_{out}$ with $A_{in}$ held fixed), the second ($d_{in}$
    /// rows) its *input role* (A acting as LoRA's A). The split with ratio λ returns
    /// $$g_\lambda = \lambda\,\mathrm{pad}(G_WA_{in}) + \mathrm{pad}(G_W^\top A_{out}),$$
    /// which the layer multiplies by c: the gradient at λ = 1; for λ ≠ 1 a direction, not the gradient of L (THEORY §7).
    /// `out_role(k, dst)` adds k times the output role into the first $d_{out}$ rows, `in_role(k, dst)` the input role
    /// into the first $d_{in}$ rows, in that order (so λ = 1 rounds exactly as the plain gradient).
    fn split(
        &self,
        out_role: impl FnOnce(T, ArrayViewMut2<'_, T>),
        in_role: impl FnOnce(T, ArrayViewMut2<'_, T>),
    ) -> Vec<Array2<T>> {
        let mut ga = Array2::zeros(self.a.dim());
        out_role(self.ratio, ga.slice_mut(s![..self.d_out, ..]));
        in_role(T::one(), ga.slice_mut(s![..self.d_in, ..]));
        vec![ga]
    }

    /// $A_{in} = A_{[:d_{in}]}$.
    pub fn a_in(&self) -> ArrayView2<'_, T> {
        self.a.slice(s![..self.d_in, ..])
    }

    /// $A_{out} = A_{[:d_{out}]}$.
    pub fn a_out(&self) -> ArrayView2<'_, T> {
        self.a.slice(s![..self.d_out, ..])
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.a.ncols()
    }
}

impl<T: Scalar> Update<T> for Symmetric<T> {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.d_out
    }
    fn delta_w(&self) -> Array2<T> {
        mm_nt(self.a_out(), self.a_in())
    }
    /// $(XA_{in})A_{out}^\top$; $XA_{in}$ is the bottleneck.
    fn apply(&self, x: ArrayView2<'_, T>) -> Array2<T> {
        mm_nt(mm(x, self.a_in()).view(), self.a_out())
    }
    /// $(GA_{out})A_{in}^\top$.
    fn apply_adjoint(&self, g: ArrayView2<'_, T>) -> Array2<T> {
        mm_nt(mm(g, self.a_out()).view(), self.a_in())
    }
    /// $Y \mathrel{+}= c\,(XA_{in})A_{out}^\top$: one accumulating product from the bottleneck.
    fn apply_acc(&self, x: ArrayView2<'_, T>, c: T, y: ArrayViewMut2<'_, T>) {
        mm_acc(c, mm(x, self.a_in()).view(), self.a_out().t(), y);
    }
    /// $G_X \mathrel{+}= c\,(GA_{out})A_{in}^\top$.
    fn apply_adjoint_acc(&self, g: ArrayView2<'_, T>, c: T, gx: ArrayViewMut2<'_, T>) {
        mm_acc(c, mm(g, self.a_out()).view(), self.a_in().t(), gx);
    }
    /// Output role $\partial A_{[:d_{out}]} \mathrel{+}= \lambda\,G^\top(XA_{in})$, input role
    /// $\partial A_{[:d_{in}]} \mathrel{+}= X^\top(GA_{out})$ (THEORY §7, unified form; λ: `Symmetric::split`).
    fn grad(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Vec<Array2<T>> {
        self.split(
            |k, dst| mm_acc(k, g.t(), mm(x, self.a_in()).view(), dst),
            |k, dst| mm_acc(k, x.t(), mm(g, self.a_out()).view(), dst),
        )
    }
    /// [`Symmetric::grad`] and the adjoint with $GA_{out}$ computed once.
    fn grad_and_adjoint_acc(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        c: T,
        gx: ArrayViewMut2<'_, T>,
    ) -> Vec<Array2<T>> {
        let g_out = mm(g, self.a_out());
        mm_acc(c, g_out.view(), self.a_in().t(), gx);
        self.split(
            |k, dst| mm_acc(k, g.t(), mm(x, self.a_in()).view(), dst),
            |k, dst| mm_acc(k, x.t(), g_out.view(), dst),
        )
    }
    /// $\partial A_{[:d_{out}]} \mathrel{+}= \lambda\,G_W A_{in}$, $\partial A_{[:d_{in}]} \mathrel{+}= G_W^\top A_{out}$.
    fn grad_dense(&self, g_w: ArrayView2<'_, T>) -> Vec<Array2<T>> {
        self.split(
            |k, dst| mm_acc(k, g_w, self.a_in(), dst),
            |k, dst| mm_acc(k, g_w.t(), self.a_out(), dst),
        )
    }
    fn bottleneck(&self, x: ArrayView2<'_, T>) -> Option<Array2<T>> {
        Some(mm(x, self.a_in()))
    }
    /// $\langle W_{0,i}, (A_{out}A_{in}^\top)_i\rangle = \sum_k A_{out,ik}(W_0A_{in})_{ik}$,
    /// $\lVert(A_{out}A_{in}^\top)_i\rVert^2 = \sum_k (A_{out}\,A_{in}^\top A_{in})_{ik}A_{out,ik}$.
    fn row_terms(&self, w0: ArrayView2<'_, T>) -> RowTerms<T> {
        let w0_a = mm(w0, self.a_in());
        let out_gram = mm(self.a_out(), mm_tn(self.a_in(), self.a_in()).view());
        RowTerms {
            cross: row_dots(self.a_out(), w0_a.view()),
            sq: row_dots(out_gram.view(), self.a_out()),
            w0_side: Some(w0_a),
        }
    }
    /// With $E = \mathrm{diag}(e)$ and $V = W_0 + cA_{out}A_{in}^\top$, [`Symmetric::grad_dense`] of $EV$:
    /// $\partial A_{[:d_{out}]} \mathrel{+}= \lambda\,EVA_{in} = \lambda\,E\,(W_0A_{in} + c\,A_{out}A_{in}^\top A_{in})$,
    /// $\partial A_{[:d_{in}]} \mathrel{+}= V^\top EA_{out} = W_0^\top(EA_{out}) + c\,A_{in}(A_{out}^\top EA_{out})$.
    fn grad_rows(
        &self,
        e: ArrayView1<'_, T>,
        w0: ArrayView2<'_, T>,
        c: T,
        terms: &RowTerms<T>,
    ) -> Vec<Array2<T>> {
        let (a_in, a_out) = (self.a_in(), self.a_out());
        let mut va = match &terms.w0_side {
            Some(w0_a) => w0_a.clone(),
            None => mm(w0, a_in),
        };
        mm_acc(c, a_out, mm_tn(a_in, a_in).view(), va.view_mut());
        let e_out = scale_rows(e, a_out);
        self.split(
            |k, mut dst| {
                dst.assign(&scale_rows(e, va.view()));
                dst.mapv_inplace(|v| k * v);
            },
            |k, mut dst| {
                mm_acc(k, w0.t(), e_out.view(), dst.view_mut());
                mm_acc(k * c, a_in, mm_tn(a_out, e_out.view()).view(), dst);
            },
        )
    }

    /// With $\Delta A = A_t - A_{t-1}$: $T_1 = (XA_{t-1,in})\Delta A_{out}^\top$,
    /// $T_2 = (X\Delta A_{in})A_{t-1,out}^\top$, $T_3 = (X\Delta A_{in})\Delta A_{out}^\top$ (THEORY §5.2, batch
    /// form); they sum to the change of $X(A_{out}A_{in}^\top)^\top$.
    fn decompose(&self, prev: &[ArrayD<T>], x: ArrayView2<'_, T>) -> Vec<(Term, Array2<T>)> {
        let a0 = as2(&prev[0]);
        let da = &self.a - &a0;
        let (a0_in, a0_out) = (
            a0.slice(s![..self.d_in, ..]),
            a0.slice(s![..self.d_out, ..]),
        );
        let (da_in, da_out) = (
            da.slice(s![..self.d_in, ..]),
            da.slice(s![..self.d_out, ..]),
        );
        let xda = mm(x, da_in);
        vec![
            (Term::T1, mm_nt(mm(x, a0_in).view(), da_out)),
            (Term::T2, mm_nt(xda.view(), a0_out)),
            (Term::T3, mm_nt(xda.view(), da_out)),
        ]
    }

    /// $\lVert A_{out}A_{in}^\top\rVert_F^2 = \sum (A_{out}^\top A_{out})\circ(A_{in}^\top A_{in})$.
    fn frobenius_sq(&self) -> f64 {
        let go = mm_tn(self.a_out(), self.a_out());
        let gi = mm_tn(self.a_in(), self.a_in());
        go.iter()
            .zip(gi.iter())
            .map(|(p, q)| p.f64() * q.f64())
            .sum()
    }

    fn param_info(&self) -> Vec<ParamInfo> {
        vec![ParamInfo {
            name: Role::SingleA.tensor_name(),
            role: Role::SingleA,
            shape: vec![self.a.nrows(), self.rank()],
        }]
    }
    fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        vec![self.a.view().into_dyn()]
    }
    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        vec![self.a.view_mut().into_dyn()]
    }
}
