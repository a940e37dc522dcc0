//! One linear map of a network: frozen, or frozen base plus adapter.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMutD};

use crate::adapters::{AdaptedLinear, AdapterConfig, Kept, ParamInfo};
use crate::error::{Error, Result};
use crate::linalg::{mm, mm_nt};
use crate::scalar::Scalar;

/// A linear map $Y = XW^\top$ whose weight is frozen, optionally with an adapter.
///
/// (A few per model, each holding its weights on the heap: the size of the adapted variant costs nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Linear<T: Scalar> {
    /// A frozen weight $W \in \mathbb R^{d_{out}\times d_{in}}$.
    Frozen(Array2<T>),
    /// A frozen base with a trainable adapter.
    Adapted(AdaptedLinear<T>),
}

impl<T: Scalar> Linear<T> {
    /// Map `index` of a network, named `name`, on base weight `w`: adapted by `adapter` when `adapted`, frozen
    /// otherwise. The adapter's seed is derived from the network's `seed` and the map's index, so adding an adapter to
    /// one map never changes another's draw; errors name the map.
    pub fn attach(
        w: Array2<T>,
        adapter: &AdapterConfig,
        adapted: bool,
        seed: u64,
        index: usize,
        name: &str,
    ) -> Result<Self> {
        if !adapted {
            return Ok(Linear::Frozen(w));
        }
        let map_seed = seed
            .wrapping_add(1 + index as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        AdaptedLinear::new(w, adapter, map_seed)
            .map(Linear::Adapted)
            .map_err(|e| match e {
                Error::Invalid {
                    field,
                    value,
                    expected,
                } => Error::Invalid {
                    field,
                    value,
                    expected: format!("{expected} (layer {name})"),
                },
                other => other,
            })
    }

    /// $Y = XW^\top$ (adapted: at ramp value `u`).
    pub fn forward(&self, x: ArrayView2<'_, T>, u: T) -> Array2<T> {
        match self {
            Linear::Frozen(w) => mm_nt(x, w.view()),
            Linear::Adapted(a) => a.forward(x, u),
        }
    }

    /// [`Linear::forward`] and what the backward reuses ([`Kept`]), given the base product `base` $= XW^\top$ if it is
    /// known (computed once for a fixed input): bit for bit [`Linear::forward`].
    pub fn forward_kept(
        &self,
        x: ArrayView2<'_, T>,
        base: Option<Array2<T>>,
        u: T,
    ) -> (Array2<T>, Option<Kept<T>>) {
        match (self, base) {
            (Linear::Frozen(_), Some(base)) => (base, None),
            (Linear::Frozen(w), None) => (mm_nt(x, w.view()), None),
            (Linear::Adapted(a), base) => a.forward_kept(x, base, u),
        }
    }

    /// Whether the map has trainable tensors.
    pub fn is_trainable(&self) -> bool {
        matches!(self, Linear::Adapted(_))
    }

    /// Parameter gradients (empty when frozen) and $\partial L/\partial X$.
    pub fn backward(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        u: T,
    ) -> (Vec<ArrayD<T>>, Array2<T>) {
        with_input(self.grads(x, g, u, true))
    }

    /// Parameter gradients and, when `input` is true, $\partial L/\partial X$: the lowest trainable map of a network
    /// skips its input gradient (nothing below it trains). The parameter gradients are bit for bit those of
    /// [`Linear::backward`] either way.
    pub fn grads(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        self.grads_kept(x, g, u, input, None)
    }

    /// [`Linear::grads`] given what the forward pass kept ([`Linear::forward_kept`]; recomputed when `None`).
    pub fn grads_kept(
        &self,
        x: ArrayView2<'_, T>,
        g: ArrayView2<'_, T>,
        u: T,
        input: bool,
        kept: Option<&Kept<T>>,
    ) -> (Vec<ArrayD<T>>, Option<Array2<T>>) {
        match self {
            Linear::Frozen(w) => (Vec::new(), input.then(|| mm(g, w.view()))),
            Linear::Adapted(a) => a.grads_kept(x, g, u, input, kept),
        }
    }

    /// The frozen base weight.
    pub fn base(&self) -> &Array2<T> {
        match self {
            Linear::Frozen(w) => w,
            Linear::Adapted(a) => &a.w0,
        }
    }

    /// The weight the map applies at ramp value `u`: $W_0 + \Delta W(u)$ of an adapted map (its
    /// [`crate::adapters::AdaptedLinear::merged_weight`]), the base of a frozen one.
    pub fn merged_weight(&self, u: T) -> Array2<T> {
        match self {
            Linear::Frozen(w) => w.clone(),
            Linear::Adapted(a) => a.merged_weight(u),
        }
    }

    /// The frozen base weight, taken out of the map.
    pub fn into_base(self) -> Array2<T> {
        match self {
            Linear::Frozen(w) => w,
            Linear::Adapted(a) => a.w0,
        }
    }

    /// The adapter's tensors (none when frozen).
    pub fn param_info(&self) -> Vec<ParamInfo> {
        match self {
            Linear::Frozen(_) => Vec::new(),
            Linear::Adapted(a) => a.param_info(),
        }
    }

    /// Read-only views of the adapter's tensors.
    pub fn params(&self) -> Vec<ArrayViewD<'_, T>> {
        match self {
            Linear::Frozen(_) => Vec::new(),
            Linear::Adapted(a) => a.params(),
        }
    }

    /// Mutable views of the adapter's tensors.
    pub fn params_mut(&mut self) -> Vec<ArrayViewMutD<'_, T>> {
        match self {
            Linear::Frozen(_) => Vec::new(),
            Linear::Adapted(a) => a.params_mut(),
        }
    }
}

/// A backward's parameter gradients and the input gradient it was asked for (`input = true`), unwrapped.
pub(super) fn with_input<T: Scalar>(
    (params, gx): (Vec<ArrayD<T>>, Option<Array2<T>>),
) -> (Vec<ArrayD<T>>, Array2<T>) {
    (params, gx.expect("the input gradient was asked for"))
}

/// Whether any of `maps` has trainable tensors (a backward below them needs their input gradients).
pub(super) fn any_trainable<T: Scalar>(maps: &[&Linear<T>]) -> bool {
    maps.iter().any(|m| m.is_trainable())
}
