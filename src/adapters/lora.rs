//! LoRA in HF PEFT's orientation and names: $\widetilde{\Delta W} = BA$, $B \in \mathbb R^{d_{out}\times r}$
//! (`lora_B.weight`, output side, zero-initialised), $A \in \mathbb R^{r\times d_{in}}$ (`lora_A.weight`).
//! The layer multiplies by $s = \alpha/r$ (or $\alpha/\sqrt r$, rsLoRA) exactly as PEFT's `scaling`.

use ndarray::{Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD};

use super::update::{as2, row_dots, ParamInfo, Role, RowTerms, Term, Update};
use crate::linalg::{mm, mm_acc, mm_nt, mm_tn, scale_rows};
use crate::scalar::Scalar;

/// LoRA's two factors.
pub struct LowRank<T: Scalar> {
    /// $A \in \mathbb R^{r\times d_{in}}$.
    pub a: Array2<T>,
    /// $B \in \mathbb R^{d_{out}\times r}$.
    pub b: Array2<T>,
}

impl<T: Scalar> LowRank<T> {
    /// Wraps the factors, checking that their inner dimensions agree.
    #[track_caller]
    pub fn new(a: Array2<T>, b: Array2<T>) -> Self {
        assert_eq!(
            a.nrows(),
            b.ncols(),
            "LoRA: A is {:?} but B is {:?}; need A r×d_in, B d_out×r",
            a.dim(),
            b.dim()
        );
        Self { a, b }
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.a.nrows()
    }
}

impl<T: Scalar> Update<T> for LowRank<T> {
    fn d_in(&self) -> usize {
        self.a.ncols()
    }
    fn d_out(&self) -> usize {
        self.b.nrows()
    }
    fn delta_w(&self) -> Array2<T> {
        mm(self.b.view(), self.a.view())
    }
    /// $(XA^\top)B^\top$: the bottleneck $XA^\top \in \mathbb R^{b\times r}$ first, $O(b(d_{in}+d_{out})r)$.
    fn apply(&self, x: ArrayView2<'_, T>) -> Array2<T> {
        mm_nt(mm_nt(x, self.a.view()).view(), self.b.view())
    }
    /// $(GB)A$.
    fn apply_adjoint(&self, g: ArrayView2<'_, T>) -> Array2<T> {
        mm(mm(g, self.b.view()).view(), self.a.view())
    }
    /// $Y \mathrel{+}= c\,(XA^\top)B^\top$: one accumulating product from the bottleneck.
    fn apply_acc(&self, x: ArrayView2<'_, T>, c: T, y: ArrayViewMut2<'_, T>) {
        mm_acc(c, mm_nt(x, self.a.view()).view(), self.b.t(), y);
    }
    /// $G_X \mathrel{+}= c\,(GB)A$.
    fn apply_adjoint_acc(&self, g: ArrayView2<'_, T>, c: T, gx: ArrayViewMut2<'_, T>) {
        mm_acc(c, mm(g, self.b.view()).view(), self.a.view(), gx);
    }
    /// $\partial A = B^\top G_W = (GB)^\top X$, $\partial B = G_W A^\top = G^\top (XA^\top)$.
    fn grad(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Vec<Array2<T>> {
        let ga = mm_tn(mm(g, self.b.view()).view(), x);
        let gb = mm_tn(g, mm_nt(x, self.a.view()).view());
        vec![ga, gb]
    }
    /// [`LowRank::grad`] and the adjoint with $GB$ computed once.
    fn grad_and_adjoint_acc(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        c: T,
        gx: ArrayViewMut2<'_, T>,
    ) -> Vec<Array2<T>> {
        let gb_ = mm(g, self.b.view());
        mm_acc(c, gb_.view(), self.a.view(), gx);
        let ga = mm_tn(gb_.view(), x);
        let gb = mm_tn(g, mm_nt(x, self.a.view()).view());
        vec![ga, gb]
    }
    fn grad_dense(&self, g_w: ArrayView2<'_, T>) -> Vec<Array2<T>> {
        vec![mm_tn(self.b.view(), g_w), mm_nt(g_w, self.a.view())]
    }
    fn bottleneck(&self, x: ArrayView2<'_, T>) -> Option<Array2<T>> {
        Some(mm_nt(x, self.a.view()))
    }
    /// $\langle W_{0,i}, (BA)_i\rangle = \sum_k B_{ik}(W_0A^\top)_{ik}$, $\lVert(BA)_i\rVert^2 = \sum_k
    /// (B\,AA^\top)_{ik}B_{ik}$.
    fn row_terms(&self, w0: ArrayView2<'_, T>) -> RowTerms<T> {
        let w0_at = mm_nt(w0, self.a.view());
        let b_gram = mm(self.b.view(), mm_nt(self.a.view(), self.a.view()).view());
        RowTerms {
            cross: row_dots(self.b.view(), w0_at.view()),
            sq: row_dots(b_gram.view(), self.b.view()),
            w0_side: Some(w0_at),
        }
    }
    /// With $E = \mathrm{diag}(e)$ and $V = W_0 + cBA$: $\partial A = B^\top EV = (EB)^\top W_0 + c\,((EB)^\top B)A$,
    /// $\partial B = EVA^\top = E\,(W_0A^\top + c\,B\,AA^\top)$ ($W_0A^\top$ from the row terms).
    fn grad_rows(
        &self,
        e: ArrayView1<'_, T>,
        w0: ArrayView2<'_, T>,
        c: T,
        terms: &RowTerms<T>,
    ) -> Vec<Array2<T>> {
        let (a, b) = (self.a.view(), self.b.view());
        let eb = scale_rows(e, b);
        let mut ga = mm_tn(eb.view(), w0);
        mm_acc(c, mm_tn(eb.view(), b).view(), a, ga.view_mut());
        let mut vat = match &terms.w0_side {
            Some(w0_at) => w0_at.clone(),
            None => mm_nt(w0, a),
        };
        mm_acc(c, b, mm_nt(a, a).view(), vat.view_mut());
        vec![ga, scale_rows(e, vat.view())]
    }

    /// With $\Delta A = A_t - A_{t-1}$, $\Delta B = B_t - B_{t-1}$ (row-batch form of LoRA+'s terms):
    /// $\delta^1 = (X\Delta A^\top)B_{t-1}^\top$, $\delta^2 = (XA_{t-1}^\top)\Delta B^\top$,
    /// $\delta^3 = (X\Delta A^\top)\Delta B^\top$; they sum to the change of $X(BA)^\top$.
    fn decompose(&self, prev: &[ArrayD<T>], x: ArrayView2<'_, T>) -> Vec<(Term, Array2<T>)> {
        let (a0, b0) = (as2(&prev[0]), as2(&prev[1]));
        let (da, db) = (&self.a - &a0, &self.b - &b0);
        let xda = mm_nt(x, da.view());
        vec![
            (Term::Delta1, mm_nt(xda.view(), b0.view())),
            (Term::Delta2, mm_nt(mm_nt(x, a0.view()).view(), db.view())),
            (Term::Delta3, mm_nt(xda.view(), db.view())),
        ]
    }

    /// $\lVert BA\rVert_F^2 = \sum (B^\top B)\circ(AA^\top)$.
    fn frobenius_sq(&self) -> f64 {
        let btb = mm_tn(self.b.view(), self.b.view());
        let aat = mm_nt(self.a.view(), self.a.view());
        btb.iter()
            .zip(aat.iter())
            .map(|(p, q)| p.f64() * q.f64())
            .sum()
    }

    fn param_info(&self) -> Vec<ParamInfo> {
        vec![
            ParamInfo {
                name: Role::LoraA.tensor_name(),
                role: Role::LoraA,
                shape: vec![self.rank(), self.d_in()],
            },
            ParamInfo {
                name: Role::LoraB.tensor_name(),
                role: Role::LoraB,
                shape: vec![self.d_out(), self.rank()],
            },
        ]
    }
    fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        vec![self.a.view().into_dyn(), self.b.view().into_dyn()]
    }
    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        vec![self.a.view_mut().into_dyn(), self.b.view_mut().into_dyn()]
    }
}
