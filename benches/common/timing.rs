//! How the criterion step benches (`steps`, `transformer`) size their samples, name their ids and read their
//! environment filters.

use std::time::Duration;

use criterion::{BenchmarkGroup, SamplingMode};

/// Criterion's settings for a benchmark whose one iteration takes about `seconds`: wide widths get the minimum of
/// 10 samples of equal size (flat sampling) and a short warm-up, so the whole bench stays a few minutes long.
pub fn configure<M: criterion::measurement::Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    seconds: f64,
) {
    if seconds < 2e-3 {
        group
            .sampling_mode(SamplingMode::Auto)
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    } else {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(if seconds < 0.1 { 500 } else { 1 }))
            .measurement_time(Duration::from_secs_f64((12.0 * seconds).max(1.0)));
    }
}

/// A rough guess of one iteration's time from its FLOPs at `gflops` GFLOP/s, only to choose criterion's settings.
pub fn guess_seconds(flops: u64, gflops: f64) -> f64 {
    flops as f64 / (gflops * 1e9)
}

/// The benchmark id of a step on `threads` threads: `<dtype>` on one (as before threads were timed), `<dtype>-<k>t`
/// on k.
pub fn step_id(dtype: &str, threads: usize) -> String {
    match threads {
        1 => dtype.to_string(),
        k => format!("{dtype}-{k}t"),
    }
}

/// The comma-separated sizes in the environment variable `var`, or `default` when it is unset.
///
/// # Panics
/// If `var` is set but holds something other than positive integers (a benchmark run is not worth starting on a
/// typo).
pub fn sizes(var: &str, default: &[usize]) -> Vec<usize> {
    let Ok(text) = std::env::var(var) else {
        return default.to_vec();
    };
    text.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(k) if k > 0 => k,
            _ => panic!("{var}={text}: expected comma-separated positive integers"),
        })
        .collect()
}

/// The comma-separated names in the environment variable `var` that are among `known`, all of `known` when it is
/// unset.
///
/// # Panics
/// If `var` names something not in `known`.
pub fn names<'a>(var: &str, known: &[&'a str]) -> Vec<&'a str> {
    let Ok(text) = std::env::var(var) else {
        return known.to_vec();
    };
    text.split(',')
        .map(|w| {
            let w = w.trim();
            *known
                .iter()
                .find(|k| **k == w)
                .unwrap_or_else(|| panic!("{var}={text}: {w:?} is not one of {}", known.join(", ")))
        })
        .collect()
}
