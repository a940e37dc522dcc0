//! Infinite-width limits that close on a finite state (closed form only; the finite-width networks coupled to them
//! are trained in `studies::coupled`).
//!
//! - [`toy`]: LoRA+'s scalar toy on one input under SGD and sign-SGD, exactly two-dimensional at every width.
//! - [`linear`]: linear MLPs with a LoRA, LoRA+ or SingLoRA adapter on the hidden layer, under SGD and sign-SGD
//!   (Adam with ε → 0 and no moments): a recursion on O(1) overlaps, with the Gaussian expectations of sign updates
//!   in closed form ([`gaussian`]).

pub mod gaussian;
pub mod linear;
pub mod toy;

pub use linear::{Basis, Family, Grams, LimitPoint, LimitRule, LinearSetup, OrderParams};
pub use toy::{ToyLimit, ToyState};
