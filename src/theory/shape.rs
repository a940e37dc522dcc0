//! Layer shape families: how $d_{in}$ and $d_{out}$ grow with the width n (THEORY §5.3).
//!
//! Every family has $d_{in} \sim n^{a_{in}}$, $d_{out} \sim n^{a_{out}}$ with $a \in \{0, 1\}$; SingLoRA's factor is
//! $m \times r$ with $m = \max(d_{in}, d_{out}) \sim n^{\mu}$, $\mu = \max(a_{in}, a_{out})$ (= 1 in every family).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A layer shape family. Text form: `square`, `tall:K`, `wide:K`, `fixed_in:D`, `fixed_out:D` (K, D ≥ 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Shape {
    /// $d_{in} = d_{out} = n$ (the MLP's hidden layer).
    #[default]
    Square,
    /// $d_{out} = k\,n$, $d_{in} = n$.
    Tall(usize),
    /// $d_{in} = k\,n$, $d_{out} = n$.
    Wide(usize),
    /// $d_{in} = d$ fixed, $d_{out} = n$.
    FixedIn(usize),
    /// $d_{out} = d$ fixed, $d_{in} = n$.
    FixedOut(usize),
}

impl Shape {
    /// $(d_{in}, d_{out})$ at width n.
    pub fn dims(self, n: usize) -> (usize, usize) {
        match self {
            Shape::Square => (n, n),
            Shape::Tall(k) => (n, k * n),
            Shape::Wide(k) => (k * n, n),
            Shape::FixedIn(d) => (d, n),
            Shape::FixedOut(d) => (n, d),
        }
    }

    /// $a_{in}$: $d_{in} \sim n^{a_{in}}$.
    pub fn a_in(self) -> f64 {
        match self {
            Shape::FixedIn(_) => 0.0,
            _ => 1.0,
        }
    }

    /// $a_{out}$: $d_{out} \sim n^{a_{out}}$.
    pub fn a_out(self) -> f64 {
        match self {
            Shape::FixedOut(_) => 0.0,
            _ => 1.0,
        }
    }

    /// $\mu = \max(a_{in}, a_{out})$: $m = \max(d_{in}, d_{out}) \sim n^{\mu}$.
    pub fn mu(self) -> f64 {
        self.a_in().max(self.a_out())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Square => write!(f, "square"),
            Shape::Tall(k) => write!(f, "tall:{k}"),
            Shape::Wide(k) => write!(f, "wide:{k}"),
            Shape::FixedIn(d) => write!(f, "fixed_in:{d}"),
            Shape::FixedOut(d) => write!(f, "fixed_out:{d}"),
        }
    }
}

impl FromStr for Shape {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "shape",
                s,
                "square, tall:K, wide:K, fixed_in:D or fixed_out:D (K, D positive integers)",
            )
        };
        let t = s.trim();
        if t == "square" {
            return Ok(Shape::Square);
        }
        let (family, size) = t.split_once(':').ok_or_else(bad)?;
        let size: usize = size.trim().parse().map_err(|_| bad())?;
        if size == 0 {
            return Err(bad());
        }
        Ok(match family.trim() {
            "tall" => Shape::Tall(size),
            "wide" => Shape::Wide(size),
            "fixed_in" => Shape::FixedIn(size),
            "fixed_out" => Shape::FixedOut(size),
            _ => return Err(bad()),
        })
    }
}
