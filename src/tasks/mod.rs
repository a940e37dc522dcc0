//! Synthetic tasks, generated in-process from a seed. Input and output dimensions never depend on the width, and
//! the data are the same at every width for a given seed, so width is the only thing that changes.
//!
//! - [`regression`]: teacher–student regression with a PSD / NSD / asymmetric / random shift in one layer.
//! - [`classification`]: labels from the arg-max of a shifted teacher.
//! - [`sequence`]: associative recall for transformers.

pub mod classification;
pub mod regression;
pub mod sequence;

pub use classification::teacher_classification;
pub use regression::{teacher_regression, toy_regression, ShiftKind};
pub use sequence::{associative_recall, RecallConfig};
