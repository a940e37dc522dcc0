//! Adapters: a frozen base weight $W_0 \in \mathbb R^{d_{out}\times d_{in}}$ plus trainable parameters.
//!
//! - [`update`]: the [`Update`] trait, a factored $\widetilde{\Delta W}$ with its hand-written backward.
//! - [`full`], [`lora`], [`singlora`]: the three updates (dense, $BA$, $A_{out}A_{in}^\top$).
//! - [`layer`]: [`AdaptedLinear`], the multiplier $s\,u$ and DoRA's magnitude/direction split around any update.
//! - [`config`]: [`AdapterConfig`] and the named options a user sets.
//!
//! To add an adapter, implement [`Update`] and build the layer with [`AdaptedLinear::from_parts`].

pub mod config;
pub mod full;
pub mod layer;
pub mod lora;
pub mod singlora;
pub mod update;

pub use config::{AdapterConfig, DoraNorm, Init, Method, Ramp, Scaling};
pub use layer::{AdaptedLinear, DoraRatio, Kept, LayerGrads};
pub use update::{ParamInfo, Role, RowTerms, Term, Update};
