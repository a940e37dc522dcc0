//! Experiments built on the library. Each study is a plain function from a config to results; the command line only
//! parses, calls and prints.
//!
//! - [`sweep`]: width sweeps with probes, resumable and parallel.
//! - [`fit`]: width exponents with bootstrap intervals.
//! - [`report`]: the long results table, the fits table and the printed summary.
//! - [`synthetic`]: the single-layer synthetic experiment.
//! - [`limit`]: finite widths against the computed infinite-width limit.
//! - [`store`]: configs with overrides, output folders, one file per finished run.

pub mod fit;
pub mod limit;
pub mod report;
pub mod store;
pub mod sweep;
pub mod synthetic;
