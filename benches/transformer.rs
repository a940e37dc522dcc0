//! `cargo bench --bench transformer`: one full training step of the transformer that
//! `singlora train --model transformer --width N --heads 4 --task recall` trains (2 blocks, 4 heads, vocabulary 16,
//! T = 5, 256 sequences = 1280 token rows, SingLoRA r = 4, α = 4 on q, k, v, o, up, down, Adam η = 0.01), at widths
//! 128 and 512 in f32 and f64, on 1 and 2 threads. On k threads the step runs as `singlora train` runs it on k
//! free cores: inside a k-thread rayon pool with [`singlora::scalar::with_product_threads`]`(k)`, so products large enough
//! split their output tiles over the threads (the numbers are the same on any thread count). A step is forward,
//! cross-entropy loss, backward and the optimiser step: what `scripts/peers/torch_transformer.py` times in PyTorch,
//! and `scripts/peers/compare_transformer.py` prints the ratio of the two per thread count.
//!
//! Criterion ids are `transformer_step/{f32,f64}-{k}t/{128,512}`;
//! `target/criterion/transformer_step/*/*/new/{estimates,sample}.json` hold what the comparison script reads.
//! `SINGLORA_BENCH_WIDTHS=128` restricts the widths, `SINGLORA_BENCH_THREADS=1` the thread counts.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use singlora::adapters::{AdapterConfig, Method};
use singlora::models::{Model, Transformer, TransformerConfig, WidthMode};
use singlora::optim::{Optimizer, OptimizerConfig, Rule};
use singlora::scalar::with_product_threads;
use singlora::tasks::{associative_recall, RecallConfig};
use singlora::train::Dataset;
use singlora::Scalar;

/// The model, data and optimiser of one `singlora train --model transformer` run at width n.
struct Setup<T: Scalar> {
    net: Transformer<T>,
    data: Dataset<T>,
    opt: Optimizer,
    factors: Vec<f64>,
}

fn setup<T: Scalar>(width: usize) -> Setup<T> {
    let recall = RecallConfig {
        keys: 8,
        values: 8,
        pairs: 2,
        permute: false,
    };
    let mut cfg = TransformerConfig::at_width(width, WidthMode::Heads, width / 4).unwrap();
    cfg.vocab = recall.vocab();
    cfg.seq_len = recall.seq_len();
    cfg.adapt = ["q", "k", "v", "o", "up", "down"]
        .map(String::from)
        .to_vec();
    let adapter = AdapterConfig::new(Method::Singlora).rank_alpha(4, 4.0);
    let net = cfg.build(cfg.base_weights::<T>(0), &adapter, 2).unwrap();
    let data = associative_recall::<T>(&recall, 256, 1, 1).unwrap();
    let optimizer = OptimizerConfig::new(Rule::from_name("adam").unwrap(), 0.01);
    let factors = net
        .params_info()
        .iter()
        .map(|p| optimizer.groups.factor(p.info.role, width))
        .collect();
    Setup {
        net,
        data,
        opt: optimizer.init().unwrap(),
        factors,
    }
}

/// Forward, loss, backward, optimiser step (u = 1: no ramp, as the default `singlora train`).
fn step<T: Scalar>(s: &mut Setup<T>) -> f64 {
    let (out, cache) = s.net.forward(&s.data.x_train, T::one());
    let (loss, g) = s.data.loss.eval(&out, &s.data.y_train);
    let grads = s.net.backward(&cache, &g, T::one());
    s.opt.step_views(s.net.params_mut(), &grads, &s.factors);
    loss
}

/// A comma-separated list of sizes from the environment variable `var`, or `default`.
fn sizes(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn bench_dtype<T: Scalar>(c: &mut Criterion) {
    let mut group = c.benchmark_group("transformer_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for threads in sizes("SINGLORA_BENCH_THREADS", &[1, 2]) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        for width in sizes("SINGLORA_BENCH_WIDTHS", &[128, 512]) {
            let mut s = setup::<T>(width);
            let id = BenchmarkId::new(format!("{}-{threads}t", T::DTYPE), width);
            group.bench_function(id, |b| {
                b.iter(|| {
                    pool.install(|| with_product_threads(threads, || black_box(step(&mut s))))
                })
            });
        }
    }
    group.finish();
}

fn transformer_step(c: &mut Criterion) {
    // As the `singlora` binary does.
    singlora::alloc::keep_freed_memory();
    bench_dtype::<f32>(c);
    bench_dtype::<f64>(c);
}

criterion_group!(benches, transformer_step);
criterion_main!(benches);
