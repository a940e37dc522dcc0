//! # singlora
//!
//! A laboratory for how low-rank adapters (full fine-tuning, LoRA, rsLoRA, LoRA+, DoRA, SingLoRA, SingLoRA+DoRA)
//! behave as networks get wider.
//!
//! Layout: [`adapters`] (the updates and their backward passes), [`optim`] (SGD, Adam, AdamW, sign-SGD, parameter
//! groups, schedules), [`io`] (the safetensors layer dump), [`linalg`] and [`rng`] (kernels and seeded draws).
//! The library measures; it never assumes a verdict.

#![warn(missing_docs)]

pub mod adapters;
pub mod alloc;
pub mod cli;
pub mod error;
pub mod io;
pub mod linalg;
pub mod models;
pub mod names;
pub mod optim;
pub mod plots;
pub mod probes;
pub mod rng;
pub mod scalar;
pub mod studies;
pub mod tasks;
pub mod theory;
pub mod train;

pub use error::{Error, Result};
pub use scalar::Scalar;
