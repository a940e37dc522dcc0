//! Experiments built on the library. Each study is a plain function from a config to results; the command line only
//! parses, calls and prints.
//!
//! - [`sweep`]: width sweeps with probes, resumable and parallel.
//! - [`fit`]: width exponents with bootstrap intervals.
//! - [`report`]: the long results table, the fits table and the printed summary.
//! - [`synthetic`]: the single-layer synthetic experiment.

pub mod fit;
pub mod report;
pub mod sweep;
pub mod synthetic;
