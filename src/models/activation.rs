//! Element-wise activations $\phi$ and their derivatives $\phi'$, next to each other.

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
    pub fn apply<T: Scalar>(self, z: T) -> T {
        let x = z.f64();
        T::of(match self {
            Activation::Relu => x.max(0.0),
            Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            Activation::Tanh => x.tanh(),
            Activation::Identity => x,
        })
    }

    /// $\phi'(z)$; for GELU $\Phi(z) + z\,\varphi(z)$.
    pub fn derivative<T: Scalar>(self, z: T) -> T {
        let x = z.f64();
        T::of(match self {
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Gelu => {
                let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                cdf + x * pdf
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
            Activation::Identity => 1.0,
        })
    }

    /// The fan-in gain that keeps activations Θ(1): √2 for ReLU (He), 1 otherwise.
    pub fn gain(self) -> f64 {
        match self {
            Activation::Relu => std::f64::consts::SQRT_2,
            _ => 1.0,
        }
    }
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
