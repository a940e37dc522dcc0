//! `cargo run --release --example wake`: what it costs to hand work to a sleeping rayon thread, the cost behind the
//! split thresholds of `scalar` (`PAR_MIN_WORK_F64`, `PAR_MIN_OPS`) and the 2-thread steps at n = 128.
//!
//! In a 2-thread pool, after `gap` µs of sequential work on one thread, `rayon::join` of two ≈10 µs jobs is timed
//! (the mean over 2000 repetitions), once as a step would run it (the helper may have fallen asleep during the gap
//! and must be woken) and once with the helper kept awake by a keeper: a job that runs whatever work the pool has
//! (`rayon::yield_now`) and yields its core to the OS in between until told to stop. With no gap both take about
//! 10 µs; the difference at long gaps is the wake-up.
//!
//! The keeper is an experiment, not part of the library: put into `with_product_threads` (A/B with `cargo bench
//! --bench steps`, alternating binaries) it made some 2-thread steps at n = 128 faster (DoRA f64 154 → 136 µs,
//! full fine-tuning f32 118 → 98) and others slower (DoRA f32 at n = 1024 2.2 → 2.9 ms), and it doubled a step in
//! more runs than without it; see README, Performance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A dependent chain of `iters` multiply–adds on integers: work that neither the compiler nor the cache can skip.
fn work(iters: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..iters {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    x
}

/// Mean µs of a join of two `job`-iteration jobs, each after `gap` iterations of sequential work.
fn timed_joins(gap: u64, job: u64) -> f64 {
    let reps = 2000;
    let mut total = 0.0;
    for _ in 0..reps {
        std::hint::black_box(work(gap));
        let start = Instant::now();
        rayon::join(
            || std::hint::black_box(work(job)),
            || std::hint::black_box(work(job)),
        );
        total += start.elapsed().as_secs_f64();
    }
    total / reps as f64 * 1e6
}

/// Runs `f` with a keeper on the pool's other thread (call it inside a 2-thread pool).
fn kept_awake<R>(f: impl FnOnce() -> R) -> R {
    let done = Arc::new(AtomicBool::new(false));
    let owner = rayon::current_thread_index();
    let stop = done.clone();
    rayon::spawn(move || {
        if rayon::current_thread_index() == owner {
            return; // popped back by the thread that spawned it
        }
        while !stop.load(Ordering::Acquire) {
            if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                std::thread::yield_now();
            }
        }
    });
    let out = f();
    done.store(true, Ordering::Release);
    out
}

fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a 2-thread pool");
    let start = Instant::now();
    std::hint::black_box(work(10_000_000));
    let per_iter = start.elapsed().as_secs_f64() / 1e7;
    let iters = |us: f64| (us * 1e-6 / per_iter) as u64;
    println!("join of two 10 µs jobs after a gap of sequential work (2-thread pool), mean µs:");
    println!(
        "{:>8} {:>14} {:>14}",
        "gap µs", "helper asleep", "kept awake"
    );
    for gap in [0.0, 20.0, 50.0, 200.0, 1000.0] {
        let asleep = pool.install(|| timed_joins(iters(gap), iters(10.0)));
        let awake = pool.install(|| kept_awake(|| timed_joins(iters(gap), iters(10.0))));
        println!("{gap:>8} {asleep:>14.1} {awake:>14.1}");
    }
}
