//! Full fine-tuning: a dense trainable $\Delta W$, zero-initialised. The reference every adapter is compared with.

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD};

use super::update::{ParamInfo, Role, Update};
use crate::linalg::{mm, mm_acc, mm_nt, mm_tn};
use crate::scalar::Scalar;

/// $\widetilde{\Delta W} = D$, $D \in \mathbb R^{d_{out}\times d_{in}}$ (`delta.weight`).
pub struct Dense<T: Scalar> {
    /// The trainable update.
    pub d: Array2<T>,
}

impl<T: Scalar> Dense<T> {
    /// A zero update for a `d_out × d_in` layer.
    pub fn zeros(d_in: usize, d_out: usize) -> Self {
        Self {
            d: Array2::zeros((d_out, d_in)),
        }
    }
}

impl<T: Scalar> Update<T> for Dense<T> {
    fn d_in(&self) -> usize {
        self.d.ncols()
    }
    fn d_out(&self) -> usize {
        self.d.nrows()
    }
    fn delta_w(&self) -> Array2<T> {
        self.d.clone()
    }
    fn dense(&self) -> Option<ArrayView2<'_, T>> {
        Some(self.d.view())
    }
    /// $X D^\top$.
    fn apply(&self, x: ArrayView2<'_, T>) -> Array2<T> {
        mm_nt(x, self.d.view())
    }
    /// $G D$.
    fn apply_adjoint(&self, g: ArrayView2<'_, T>) -> Array2<T> {
        mm(g, self.d.view())
    }
    /// $Y \mathrel{+}= c\,XD^\top$ (one accumulating product).
    fn apply_acc(&self, x: ArrayView2<'_, T>, c: T, y: ArrayViewMut2<'_, T>) {
        mm_acc(c, x, self.d.t(), y);
    }
    /// $G_X \mathrel{+}= c\,GD$.
    fn apply_adjoint_acc(&self, g: ArrayView2<'_, T>, c: T, gx: ArrayViewMut2<'_, T>) {
        mm_acc(c, g, self.d.view(), gx);
    }
    /// $\partial D = G^\top X$.
    fn grad(&self, x: ArrayView2<'_, T>, g: ArrayView2<'_, T>) -> Vec<Array2<T>> {
        vec![mm_tn(g, x)]
    }
    fn grad_dense(&self, g_w: ArrayView2<'_, T>) -> Vec<Array2<T>> {
        vec![g_w.to_owned()]
    }
    fn param_info(&self) -> Vec<ParamInfo> {
        vec![ParamInfo {
            name: Role::Dense.tensor_name(),
            role: Role::Dense,
            shape: vec![self.d_out(), self.d_in()],
        }]
    }
    fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        vec![self.d.view().into_dyn()]
    }
    fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        vec![self.d.view_mut().into_dyn()]
    }
}
