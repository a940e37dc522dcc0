//! Experiments built on the library. Every study kind is a grid of runs handed to one engine; the command line only
//! parses, calls and prints.
//!
//! - [`engine`]: the resumable runner every study kind uses (lock, validation before writing, parallel atomic runs).
//!   [`cost`]: what a job costs, counted the way the engine computes it (shard balance, Slurm time limits).
//! - [`config`]: the study file shared by width sweeps, learning-rate studies and the theory printout.
//! - [`spec`]: one run resolved from an arm, a rate, a width and a seed, and carried out.
//! - [`store`]: study files with overrides, run files, names.
//! - [`sweep`]: width sweeps with probes. [`lr`]: the learning-rate study. [`limit`]: finite widths against the
//!   computed infinite-width limit ([`coupled`]: the networks coupled to it).
//! - [`fit`]: width exponents with intervals, verdicts and agreements. [`report`]: every table a user reads.
//! - [`merge`]: shards of one study (`--shard I/N`, e.g. a Slurm array) gathered into one folder.
//! - [`synthetic`]: the single-layer synthetic experiment.
//! - [`verify`]: `singlora verify`, measured verdicts on the paper's claims C1–C9 from studies of the kinds above.

pub mod attention;
pub mod config;
pub mod cost;
pub mod coupled;
pub mod engine;
pub mod fit;
pub mod limit;
pub mod lr;
pub mod merge;
pub mod report;
pub mod spec;
pub mod store;
pub mod sweep;
pub mod synthetic;
pub mod verify;
