//! Element-wise activations $\phi$ and their derivatives $\phi'$, next to each other.

use ndarray::{Array2, Zip};

use crate::names::named_enum;
use crate::scalar::Scalar;

/// An activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// $\max(z, 0)$ (derivative 0 at 0, as PyTorch).
    Relu,
    /// PyTorch's exact GELU, $z\,\Phi(z) = \tfrac z2\bigl(1 + \mathrm{erf}(z/\sqrt2)\bigr)$.
    Gelu,
    /// $\tanh z$.
    Tanh,
    /// $z$: linear networks, where the theory is exact.
    Identity,
}

impl Activation {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
        }
    }

    /// $\phi(z)$.
    #[inline(always)]
    pub fn apply<T: Scalar>(self, z: T) -> T {
        match self {
            // max(z, 0) with NaN and −0 mapped to +0, as f64's `max(x, 0.0)` computes it (maxsd returns its second
            // operand unless the first is greater); done in T, which is exact, so f32 needs no conversions.
            Activation::Relu => {
                if z > T::zero() {
                    z
                } else {
                    T::zero()
                }
            }
            Activation::Gelu => {
                let x = z.f64();
                T::of(0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)))
            }
            Activation::Tanh => T::of(z.f64().tanh()),
            Activation::Identity => z,
        }
    }

    /// $\phi'(z)$; for GELU $\Phi(z) + z\,\varphi(z)$.
    #[inline(always)]
    pub fn derivative<T: Scalar>(self, z: T) -> T {
        match self {
            // 0 at 0 and for NaN, as PyTorch's threshold backward.
            Activation::Relu => {
                if z > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Gelu => {
                let x = z.f64();
                let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                T::of(cdf + x * pdf)
            }
            Activation::Tanh => T::of(1.0 - z.f64().tanh().powi(2)),
            Activation::Identity => T::one(),
        }
    }

    /// $\phi$ of every element of `z`. The variant is matched once, outside the loop, so each arm is a loop of one
    /// known function the compiler vectorises (ReLU mapped with ndarray's `mapv` and through f64 was 7% of a LoRA
    /// step at n = 128 in f32); every element is [`Activation::apply`] exactly.
    pub fn apply_all<T: Scalar>(self, z: &Array2<T>) -> Array2<T> {
        // `Zip::map_collect` writes each output once into fresh memory (`mapv` pushes element by element and stays
        // scalar; a copy mapped in place costs an extra pass).
        match self {
            Activation::Relu if z.is_standard_layout() => relu_all(z),
            Activation::Relu => map_all(z, |v| Activation::Relu.apply(v)),
            Activation::Gelu => map_all(z, |v| Activation::Gelu.apply(v)),
            Activation::Tanh => map_all(z, |v| Activation::Tanh.apply(v)),
            Activation::Identity => z.clone(),
        }
    }

    /// $\partial \mathrel{*}= \phi'(z)$ element by element (the backward through $\phi$), with the variant matched
    /// once as in [`Activation::apply_all`]; every element is multiplied by [`Activation::derivative`] exactly.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn backward_into<T: Scalar>(self, d: &mut Array2<T>, z: &Array2<T>) {
        assert_eq!(
            d.dim(),
            z.dim(),
            "activation backward: gradient and pre-activation shapes differ"
        );
        match self {
            Activation::Relu if d.is_standard_layout() && z.is_standard_layout() => relu_backward(
                d.as_slice_mut().expect("standard layout"),
                z.as_slice().expect("standard layout"),
            ),
            Activation::Relu => scale_all(d, z, |v| Activation::Relu.derivative(v)),
            Activation::Gelu => scale_all(d, z, |v| Activation::Gelu.derivative(v)),
            Activation::Tanh => scale_all(d, z, |v| Activation::Tanh.derivative(v)),
            // φ' = 1: multiplying by one changes nothing (NaN stays NaN, −0 stays −0).
            Activation::Identity => {}
        }
    }

    /// The fan-in gain that keeps activations Θ(1): √2 for ReLU (He), 1 otherwise.
    pub fn gain(self) -> f64 {
        match self {
            Activation::Relu => std::f64::consts::SQRT_2,
            _ => 1.0,
        }
    }
}

/// `f` of every element of `z`, into fresh memory (monomorphised per closure, so `f` is inlined).
fn map_all<T: Scalar>(z: &Array2<T>, f: impl Fn(T) -> T) -> Array2<T> {
    Zip::from(z).map_collect(|&v| f(v))
}

/// ReLU of a standard-layout `z` into fresh memory, through [`relu_slice`].
fn relu_all<T: Scalar>(z: &Array2<T>) -> Array2<T> {
    let mut out = Array2::<T>::uninit(z.raw_dim());
    relu_slice(
        z.as_slice().expect("standard layout"),
        out.as_slice_mut().expect("a fresh array"),
    );
    // SAFETY: `relu_slice` wrote every element of `out` (its slice covers the whole array; the lengths are asserted).
    unsafe { out.assume_init() }
}

crate::scalar::widest_vectors! {
    /// `out[i] = ReLU(z[i])` ([`Activation::apply`] element for element: a compare and a select, exact), compiled for
    /// the CPU's widest vectors.
    ///
    /// # Panics
    /// If the lengths differ.
    #[track_caller]
    fn relu_slice<T: Scalar>(z: &[T], out: &mut [std::mem::MaybeUninit<T>]) {
        assert_eq!(z.len(), out.len(), "relu: lengths differ");
    } => relu_slice_loop
}

#[inline(always)]
fn relu_slice_loop<T: Scalar>(z: &[T], out: &mut [std::mem::MaybeUninit<T>]) {
    for (o, &v) in out.iter_mut().zip(z) {
        *o = std::mem::MaybeUninit::new(Activation::Relu.apply(v));
    }
}

crate::scalar::widest_vectors! {
    /// `d[i] *= ReLU'(z[i])` ([`Activation::derivative`] element for element, the product by 0 or 1 as in
    /// [`scale_all`]), compiled for the CPU's widest vectors.
    ///
    /// # Panics
    /// If the lengths differ.
    #[track_caller]
    fn relu_backward<T: Scalar>(d: &mut [T], z: &[T]) {
        assert_eq!(d.len(), z.len(), "relu backward: lengths differ");
    } => relu_backward_loop
}

#[inline(always)]
fn relu_backward_loop<T: Scalar>(d: &mut [T], z: &[T]) {
    for (d, &v) in d.iter_mut().zip(z) {
        *d *= Activation::Relu.derivative(v);
    }
}

/// `d *= f(z)` element by element.
fn scale_all<T: Scalar>(d: &mut Array2<T>, z: &Array2<T>, f: impl Fn(T) -> T) {
    Zip::from(d).and(z).for_each(|d, &v| *d *= f(v));
}

named_enum!(
    Activation,
    "activation",
    [
        Activation::Relu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Identity
    ]
);
