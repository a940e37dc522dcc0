//! Synthetic tasks, generated in-process from a seed. Input and output dimensions never depend on the width, and
//! the inputs are the same at every width for a given seed, so width is the only thing that changes.

pub mod regression;

pub use regression::{ShiftKind, TeacherRegression};
