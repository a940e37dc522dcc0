//! `cargo bench --bench steps`: the time of one full training step of singlora's MLP, and this machine's GEMM
//! throughput on the same shapes in the same run, so that every speed claim is a ratio measured on one machine at one
//! load (issue "Studies an order of magnitude faster than a PyTorch script"; `scripts/peers/compare.py` reads the
//! results and puts them beside PyTorch's).
//!
//! # What is timed
//!
//! `<method>/<dtype>/<n>` (e.g. `singlora/f64/1024`): one optimiser step of the MLP
//! 16 → n → n → n → 1 (depth 3, ReLU, μP readout, no biases) with the adapter on both hidden maps `hidden.1`,
//! `hidden.2` (`adapt = ["hidden"]`), rank r = 8, α = 8, batch b = 64, Adam (η = 10⁻³, PyTorch's defaults
//! otherwise), exactly as `src/train.rs` does it through the public API:
//! `Model::forward` → `train::mse` → `Model::backward` → `Optimizer::step_views`. The batch and its targets are fixed;
//! the model keeps training across iterations (η is small enough that it stays finite, which is checked after each
//! benchmark). Methods: `full`, `lora`, `dora`, `singlora`, `singlora_dora`; dtypes f32 and f64; widths
//! 64 … 8192. `<method>/<dtype>/<n>` runs the step on one thread; `<method>/<dtype>-2t/<n>` on two, as `singlora
//! train` runs it on two free cores: inside a 2-thread rayon pool with `scalar::with_product_threads(2)` (one `install` around
//! each sample's timed loop, as a training loop runs on a pool thread, not one hand-off per step), so products
//! large enough split their output tiles over the threads (the numbers are the same on any thread count,
//! tests/models.rs). The allocator keeps freed memory, as the `singlora` binary sets it (`alloc::keep_freed_memory`).
//!
//! `gemm_xwt/<dtype>/<n>`, `gemm_gw/<dtype>/<n>`, `gemm_gtx/<dtype>/<n>`: the three dense products a step is made of,
//! through `singlora::linalg`, with b = 64: the forward $XW_0^\top$ (`mm_nt`, (b×n)·(n×n)ᵀ), the input gradient $GW_0$
//! (`mm`, (b×n)·(n×n)) and full fine-tuning's weight gradient $G^\top X$ (`mm_tn`, (b×n)ᵀ·(b×n)), each 2·b·n² FLOP.
//! Their GFLOP/s is the ceiling a step could reach with these kernels on this machine.
//!
//! `adam_full/<dtype>[-2t]/<n>` (n = 1024, 2048): Adam's update alone on the two n × n weights full fine-tuning
//! trains, reported in bytes of memory traffic per second (see [`bench_adam_dtype`]): the part of full
//! fine-tuning's step that is not products.
//!
//! # FLOP count of a step (only the operations the step needs)
//!
//! Criterion reports the throughput of every benchmark as "elem/s"; the elements are FLOPs, so `Gelem/s` reads as
//! GFLOP/s. Only matrix products are counted (2·m·k·n each); element-wise work (ReLU, the loss, DoRA's row norms and
//! scalings, Adam's update: O(b·n + n² + parameters)) is not. "Needed" means what an autograd engine must run:
//! the frozen input map gets no weight gradient, and since its input is data, no one needs the gradient with respect
//! to `hidden.1`'s input either (singlora skips it). With b = 64, d₀ = 16, r = 8 and the two adapted n × n maps `hidden.1` (bottom) and `hidden.2`
//! (top):
//!
//! - frozen maps, every method: input forward 2·b·d₀·n; readout forward 2·b·n and its input gradient 2·b·n.
//! - base of each adapted map: forward $XW_0^\top$ 2·b·n²; the top map also needs its input gradient $GW_0$, 2·b·n².
//! - `lora` per adapted map: forward $XA^\top$ and $(XA^\top)B^\top$, 4·b·n·r; backward $GB$,
//!   $\partial A = (GB)^\top X$, $\partial B = G^\top(XA^\top)$, 6·b·n·r; the top map's input gradient adds
//!   $(GB)A$, 2·b·n·r.
//! - `singlora` per adapted map: the same count with $A_{in}$, $A_{out}$ in place of $A^\top$, $B$: forward
//!   $XA_{in}$, $(XA_{in})A_{out}^\top$; backward $GA_{out}$, $G^\top(XA_{in})$, $X^\top(GA_{out})$; top input
//!   gradient $(GA_{out})A_{in}^\top$.
//! - `dora`, `singlora_dora`: their update's count, plus the row norms of $V = W_0 + c\widetilde{\Delta W}$ without
//!   forming it: the cross term needs $W_0A^\top$ (or $W_0A_{in}$), 2·n²·r per map (the Gram $AA^\top$ and
//!   $B\,AA^\top$ are O(n·r²)); the full-norm variant's projection term adds $(EB)^\top W_0$, another 2·n²·r, which
//!   the bench's default (detached) does not run. The magnitude's gradient needs $XV^\top$, which is the forward's
//!   output before the scaling, so no extra product.
//! - `full` per adapted map: what an engine training $W = W_0 + D$ runs: forward $XW^\top$ (the base's 2·b·n²),
//!   backward $\partial D = G^\top X$ 2·b·n²; the top map's input gradient $GW$ (the base's). singlora multiplies
//!   by the merged $W_0 + cD$, so it runs exactly these.
//!
//! Totals, with $F_0 = 2bd_0n + 4bn$: full $F_0 + 10bn^2$; lora and singlora $F_0 + 6bn^2 + 22bnr$; dora and
//! singlora_dora $F_0 + 6bn^2 + 22bnr + 4n^2r$. The low-rank products are a share 22r/(6n) of the base's: 46% at
//! n = 64, 3% at n = 1024, so from n ≈ 512 on a LoRA step is three (b×n)·(n×n) GEMMs plus small change.
//!
//! # Running it
//!
//! `cargo bench --bench steps` runs everything (not yet timed end to end: n = 8192 is the slow end, tens of seconds
//! per benchmark); a regex filter selects,
//! e.g. `cargo bench --bench steps -- singlora/f64/1024` or `cargo bench --bench steps -- '/(f32|f64)/(128|1024)$'`.
//! Results land in `target/criterion/<group>/<dtype>/<n>/new/estimates.json` (times in ns per step).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use singlora::adapters::Method;
use singlora::linalg::{mm, mm_nt, mm_tn};
use singlora::rng::{normal_matrix, SeedRng};
use singlora::scalar::with_product_threads;
use singlora::Scalar;

mod common;
use common::timing::{configure, guess_seconds, step_id};
use common::{Step, BATCH, INPUT_DIM, RANK};

/// Widths n of the step benchmarks.
const WIDTHS: [usize; 8] = [64, 128, 256, 512, 1024, 2048, 4096, 8192];

/// FLOPs of the matrix products one training step needs (formulas in the file's documentation).
fn step_flops(method: Method, n: usize) -> u64 {
    let (b, d0, r, n) = (BATCH as u64, INPUT_DIM as u64, RANK as u64, n as u64);
    let frozen = 2 * b * d0 * n + 4 * b * n;
    let base = 6 * b * n * n;
    let low_rank = 22 * b * n * r;
    frozen
        + match method {
            Method::Full => 10 * b * n * n,
            Method::Lora | Method::Singlora => base + low_rank,
            Method::Dora | Method::SingloraDora => base + low_rank + 4 * n * n * r,
        }
}

fn bench_steps_dtype<T: Scalar>(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a rayon pool");
    for method in Method::ALL {
        let mut group = c.benchmark_group(method.name());
        for (n, threads) in WIDTHS.into_iter().flat_map(|n| [(n, 1), (n, 2)]) {
            let flops = step_flops(method, n);
            configure(&mut group, guess_seconds(flops, 10.0) / threads as f64);
            group.throughput(Throughput::Elements(flops));
            // Criterion calls the closure once per sample: the model is built on the first call only (at n = 8192
            // that takes seconds), and keeps training from sample to sample.
            let mut step: Option<Step<T>> = None;
            let id = BenchmarkId::new(step_id(T::DTYPE, threads), n);
            group.bench_with_input(id, &n, |b, &n| {
                let step = step.get_or_insert_with(|| Step::new(method, n));
                match threads {
                    1 => b.iter(|| black_box(step.run())),
                    // One hand-off into the pool per sample, not per step: `singlora train` and the study
                    // engine run a whole training loop on a pool thread, so a step never pays the hand-off.
                    k => b.iter_custom(|iters| {
                        pool.install(|| {
                            with_product_threads(k, || {
                                let start = std::time::Instant::now();
                                for _ in 0..iters {
                                    black_box(step.run());
                                }
                                start.elapsed()
                            })
                        })
                    }),
                }
            });
            if let Some(mut step) = step {
                let loss = step.run();
                assert!(
                    loss.is_finite(),
                    "{}/{}/{n}: the loss became {loss} while benchmarking; lower the benchmark's η",
                    method.name(),
                    T::DTYPE
                );
            }
        }
        group.finish();
    }
}

fn bench_gemm_dtype<T: Scalar>(c: &mut Criterion) {
    type Product<T> = fn(&Array2<T>, &Array2<T>, &Array2<T>) -> Array2<T>;
    let products: [(&str, Product<T>); 3] = [
        ("gemm_xwt", |x, w, _| mm_nt(x.view(), w.view())),
        ("gemm_gw", |_, w, g| mm(g.view(), w.view())),
        ("gemm_gtx", |x, _, g| mm_tn(g.view(), x.view())),
    ];
    for (name, product) in products {
        let mut group = c.benchmark_group(name);
        for n in WIDTHS {
            let flops = 2 * (BATCH * n * n) as u64;
            configure(&mut group, guess_seconds(flops, 10.0));
            group.throughput(Throughput::Elements(flops));
            let mut operands: Option<[Array2<T>; 3]> = None;
            group.bench_with_input(BenchmarkId::new(T::DTYPE, n), &n, |b, &n| {
                let [x, w, g] = operands.get_or_insert_with(|| {
                    [
                        normal_matrix(&mut SeedRng::new(0, "x"), BATCH, n, 1.0),
                        normal_matrix(&mut SeedRng::new(0, "w0"), n, n, 1.0 / (n as f64).sqrt()),
                        normal_matrix(&mut SeedRng::new(0, "g"), BATCH, n, 1.0),
                    ]
                });
                b.iter(|| black_box(product(x, w, g)));
            });
        }
        group.finish();
    }
}

/// `adam_full/<dtype>[-2t]/<n>`: Adam's update alone on full fine-tuning's trainable weights (the two n × n hidden
/// maps), on one thread and split over two as the 2-thread step splits it. Throughput in bytes of memory traffic:
/// per weight the parameter and gradient in the dtype and the two f64 moments are read and the parameter and moments
/// written, 3·sizeof(T) + 32 bytes (56 in f64, 44 in f32), the number to compare with the machine's memory bandwidth
/// (the division and square root per weight are cheaper at these sizes).
fn bench_adam_dtype<T: Scalar>(c: &mut Criterion) {
    use singlora::optim::{OptimizerConfig, Rule, Slot};
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a rayon pool");
    let mut group = c.benchmark_group("adam_full");
    for (n, threads) in [1024, 2048].into_iter().flat_map(|n| [(n, 1), (n, 2)]) {
        let len = n * n;
        let bytes = (2 * len * (3 * std::mem::size_of::<T>() + 32)) as u64;
        configure(&mut group, bytes as f64 / 10e9);
        group.throughput(Throughput::Bytes(bytes));
        let mut w: Vec<Vec<T>> = (0..2).map(|_| vec![T::of(0.1); len]).collect();
        let g: Vec<Vec<T>> = (0..2)
            .map(|k| {
                let m = normal_matrix::<T>(&mut SeedRng::new(k, "adam.g"), n, n, 1e-3);
                m.into_raw_vec_and_offset().0
            })
            .collect();
        let mut optimizer = OptimizerConfig::new(Rule::adam(), 1e-3)
            .init()
            .expect("valid optimiser");
        let mut step = || {
            let (w0, w1) = w.split_at_mut(1);
            optimizer.step(&mut [
                Slot {
                    value: &mut w0[0],
                    grad: &g[0],
                    lr_factor: 1.0,
                },
                Slot {
                    value: &mut w1[0],
                    grad: &g[1],
                    lr_factor: 1.0,
                },
            ]);
        };
        let id = BenchmarkId::new(step_id(T::DTYPE, threads), n);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let timed = |step: &mut dyn FnMut()| {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        step();
                    }
                    start.elapsed()
                };
                match threads {
                    1 => timed(&mut step),
                    k => pool.install(|| with_product_threads(k, || timed(&mut step))),
                }
            })
        });
    }
    group.finish();
}

fn steps(c: &mut Criterion) {
    // As the `singlora` binary does.
    singlora::alloc::keep_freed_memory();
    bench_steps_dtype::<f64>(c);
    bench_steps_dtype::<f32>(c);
}

fn gemm(c: &mut Criterion) {
    bench_gemm_dtype::<f64>(c);
    bench_gemm_dtype::<f32>(c);
    bench_adam_dtype::<f64>(c);
    bench_adam_dtype::<f32>(c);
}

criterion_group!(benches, steps, gemm);
criterion_main!(benches);
