//! Models: the activations' derivatives and the whole-MLP gradient against central finite differences in f64 (every
//! adapter, on the square hidden map, the tall input map and the wide readout), attaching adapters at
//! initialisation leaves the output unchanged, thread-count independence, and a short training run that must reduce
//! the held-out loss.
//!
//! Error budget for the whole-model check: the network is smooth except ReLU's kink, which we avoid by using GELU and
//! tanh (ReLU is checked on its own away from 0). Compositions of smooth maps have O(1) third derivatives here, so
//! with h = 1e-5 the truncation error is ~1e-10 and round-off ~ε|L|/h ~ 1e-10; we assert 1e-6 relative.

mod common;

use common::rel_err;
use singlora::adapters::{AdapterConfig, DoraNorm, Method, Ramp};
use singlora::models::{Activation, MlpConfig, Model, Readout};
use singlora::optim::{OptimizerConfig, Rule};
use singlora::tasks::{teacher_regression, ShiftKind, Teacher};
use singlora::train::{train, TrainConfig};

#[test]
fn activation_derivatives_match_finite_differences() {
    for act in [
        Activation::Relu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Identity,
    ] {
        for &z in &[-2.3f64, -0.7, -0.1, 0.3, 1.1, 2.9] {
            let h = 1e-6;
            let fd = (act.apply(z + h) - act.apply(z - h)) / (2.0 * h);
            assert!(
                (fd - act.derivative(z)).abs() < 1e-8,
                "{act} at {z}: {fd} vs {}",
                act.derivative::<f64>(z)
            );
        }
    }
    // GELU values from PyTorch's exact definition: gelu(1) = 0.8413447460685429, gelu(-1) = -0.15865525393145707.
    assert!((Activation::Gelu.apply(1.0f64) - 0.841_344_746_068_542_9).abs() < 1e-15);
    assert!((Activation::Gelu.apply(-1.0f64) + 0.158_655_253_931_457_07).abs() < 1e-15);
}

/// ReLU at the edges of the number line, f32 and f64, bit for bit: NaN and −0 go to +0 (what `f64::max(x, 0.0)`,
/// the previous definition, returns), ±∞ and the smallest subnormal pass or vanish by sign; its derivative is 0 at 0
/// and for NaN. And the whole-array forms are the element functions exactly, for every activation.
fn check_relu_edges<T: singlora::Scalar>() {
    let relu = Activation::Relu;
    let tiny = T::min_positive_value() / T::of(4.0); // subnormal
    let cases = [
        (T::nan(), T::zero()),
        (-T::zero(), T::zero()),
        (T::zero(), T::zero()),
        (T::neg_infinity(), T::zero()),
        (T::infinity(), T::infinity()),
        (tiny, tiny),
        (-tiny, T::zero()),
        (T::of(-1.5), T::zero()),
        (T::of(2.25), T::of(2.25)),
    ];
    for (z, want) in cases {
        let got = relu.apply(z);
        assert_eq!(
            got.f64().to_bits(),
            want.f64().to_bits(),
            "{} relu({z}) = {got}",
            T::DTYPE
        );
        // The previous definition, through f64's max.
        assert_eq!(
            got.f64().to_bits(),
            z.f64().max(0.0).to_bits(),
            "{} relu({z}) against f64::max",
            T::DTYPE
        );
        let slope = if z > T::zero() { 1.0 } else { 0.0 };
        assert_eq!(relu.derivative(z).f64(), slope, "{} relu'({z})", T::DTYPE);
    }
    // 7 rows: more elements than one 512-bit vector holds, and a tail (the vectorised ReLU loops' remainders); the
    // column-major copy takes the general (strided) path.
    let z = ndarray::Array2::from_shape_fn((7, cases.len()), |(i, j)| {
        cases[j].0 * T::of(i as f64 - 1.0)
    });
    let z_f = {
        let mut f = ndarray::Array2::zeros(ndarray::ShapeBuilder::f(z.raw_dim()));
        f.assign(&z);
        f
    };
    assert!(!z_f.is_standard_layout());
    let d0 = ndarray::Array2::from_shape_fn(z.dim(), |(i, j)| T::of(0.5 + (i * 7 + j) as f64));
    for (act, z) in [
        Activation::Relu,
        Activation::Gelu,
        Activation::Tanh,
        Activation::Identity,
    ]
    .into_iter()
    .flat_map(|act| [(act, z.clone()), (act, z_f.clone())])
    {
        let bits = |a: &ndarray::Array2<T>| a.iter().map(|v| v.f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&act.apply_all(&z)),
            bits(&z.mapv(|v| act.apply(v))),
            "{act} apply_all"
        );
        let mut d = d0.clone();
        act.backward_into(&mut d, &z);
        let want = ndarray::Zip::from(&d0)
            .and(&z)
            .map_collect(|&d, &zv| d * act.derivative(zv));
        assert_eq!(bits(&d), bits(&want), "{act} backward_into");
    }
}

#[test]
fn relu_edges_and_whole_array_forms() {
    check_relu_edges::<f64>();
    check_relu_edges::<f32>();
}

fn mlp_cfg(act: Activation, adapt: &[&str]) -> MlpConfig {
    MlpConfig {
        input_dim: 4,
        width: 6,
        depth: 3,
        output_dim: 3,
        activation: act,
        readout: Readout::Standard,
        adapt: adapt.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn mlp_gradients_match_finite_differences() {
    let x = common::gaussian(5, 4, 1, "x");
    let g = common::gaussian(5, 3, 1, "g");
    for method in Method::ALL {
        for act in [Activation::Gelu, Activation::Tanh, Activation::Identity] {
            let cfg = mlp_cfg(act, &["input", "hidden.1", "readout"]);
            let adapter = AdapterConfig::new(method)
                .rank_alpha(2, 2.0)
                .dora_norm(DoraNorm::Full);
            let mut net = cfg.build(cfg.base_weights::<f64>(3), &adapter, 4).unwrap();
            // Random adapter states, so no gradient is trivially zero.
            for (k, layer) in net.layers.iter_mut().enumerate() {
                if let singlora::models::Linear::Adapted(a) = layer {
                    a.randomize(10 + k as u64, 0.6);
                }
            }
            let u = 0.6;
            let (_, cache) = net.forward(&x, u);
            let grads = net.backward(&cache, &g, u);
            let probe = |n: &singlora::models::Mlp<f64>| (&n.forward(&x, u).0 * &g).sum();
            let fds = common::fd_tensors(&mut net, Model::params_mut, 1e-5, probe);
            for (k, fd) in fds.iter().enumerate() {
                let e = rel_err(&grads[k], fd);
                assert!(
                    e <= 1e-6,
                    "{method} {act}: {} rel err {e:e}",
                    net.params_info()[k].full_name()
                );
            }
        }
    }
}

#[test]
fn attaching_adapters_at_init_leaves_the_output_unchanged() {
    let x = common::gaussian(7, 16, 2, "x");
    for width in [8, 32] {
        let mut cfg = MlpConfig::new(width);
        cfg.adapt = vec!["input".into(), "hidden".into(), "readout".into()];
        cfg.depth = 3;
        cfg.output_dim = 4;
        let base = cfg.base_weights::<f64>(1);
        let mut plain_cfg = cfg.clone();
        plain_cfg.adapt.clear();
        let plain = plain_cfg
            .build(
                base.clone(),
                &AdapterConfig::new(Method::Lora).rank_alpha(2, 2.0),
                0,
            )
            .unwrap();
        let (y0, _) = plain.forward(&x, 1.0);
        for method in Method::ALL {
            let mut adapter = AdapterConfig::new(method).rank_alpha(2, 2.0);
            adapter.ramp = Ramp {
                steps: 5,
                u_min: 0.0,
            };
            let net = cfg.build(base.clone(), &adapter, 9).unwrap();
            let u0 = adapter.ramp.u(0);
            let (y, _) = net.forward(&x, u0);
            assert_eq!(
                y, y0,
                "{method} at width {width}: attaching changed the output"
            );
        }
    }
}

fn short_run(threads: usize) -> (Vec<f64>, Vec<f64>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut cfg = MlpConfig::new(64);
        cfg.activation = Activation::Gelu;
        let task = teacher_regression::<f64>(&Teacher {
            mlp: &cfg,
            base_seed: 1,
            layer: "hidden.1",
            kind: ShiftKind::Psd,
            rank: 2,
            train: 128,
            test: 64,
            data_seed: 2,
        })
        .unwrap();
        let adapter = AdapterConfig::new(Method::Singlora).rank_alpha(2, 2.0);
        let mut net = cfg.build(cfg.base_weights::<f64>(1), &adapter, 3).unwrap();
        let tc = TrainConfig {
            optimizer: OptimizerConfig::new(Rule::adam(), 0.02),
            steps: 60,
            batch: Some(32),
            ramp: Ramp::default(),
            width: 64,
            ..TrainConfig::default()
        };
        let rec = train(&mut net, &tc, &task).unwrap();
        (rec.train_loss, rec.test_loss)
    })
}

/// Same seed ⇒ identical losses with 1 and 2 threads (bitwise; products split over threads are checked in
/// tests/threads.rs).
#[test]
fn identical_losses_with_one_and_two_threads() {
    assert_eq!(short_run(1), short_run(2));
}

/// A 60-step Adam run of SingLoRA on the PSD teacher task must cut the held-out loss by at least 2×. The task's
/// initial held-out loss is ½·rms(δ)² = ½ by construction (normalised shift); a trainer that did nothing, or moved
/// the wrong way, fails.
#[test]
fn short_training_reduces_held_out_loss() {
    let (train_loss, test_loss) = short_run(1);
    let (first, last) = (test_loss[0], *test_loss.last().unwrap());
    assert!(train_loss.iter().all(|l| l.is_finite()));
    assert!(last < first / 2.0, "held-out loss {first} → {last}");
}

/// A diverging run is a result: the step is recorded and training stops, no panic.
#[test]
fn divergence_is_recorded() {
    let cfg = MlpConfig::new(16);
    let task = teacher_regression::<f64>(&Teacher {
        mlp: &cfg,
        base_seed: 1,
        layer: "hidden.1",
        kind: ShiftKind::Asymmetric,
        rank: 2,
        train: 32,
        test: 16,
        data_seed: 2,
    })
    .unwrap();
    let adapter = AdapterConfig::new(Method::Lora).rank_alpha(2, 2.0);
    let mut net = cfg.build(cfg.base_weights::<f64>(1), &adapter, 3).unwrap();
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::sgd(), 1e150),
        steps: 50,
        batch: None,
        ramp: Ramp::default(),
        width: 16,
        ..TrainConfig::default()
    };
    let rec = train(&mut net, &tc, &task).unwrap();
    let t = rec.diverged_at.expect("must diverge");
    assert!(
        t < 50 && rec.train_loss.len() as u64 == t + 1,
        "diverged at {t}, {} losses",
        rec.train_loss.len()
    );
}

#[test]
fn bad_mlp_configs_name_themselves() {
    let mut cfg = MlpConfig::new(8);
    cfg.adapt = vec!["hidden.7".into()];
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("invalid adapt = hidden.7"), "{e}");
    cfg.adapt = vec!["hidden.1".into()];
    cfg.depth = 1;
    assert!(cfg.validate().unwrap_err().to_string().contains("depth"));
    let cfg = MlpConfig::new(8);
    let e = cfg
        .build(
            cfg.base_weights::<f64>(0),
            &AdapterConfig::new(Method::Lora).rank_alpha(9, 1.0),
            0,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("invalid rank = 9") && e.contains("layer hidden.1"),
        "{e}"
    );
}

/// LoRA+'s scalar toy: rank-1 LoRA on a 1×n map has n + 1 parameters (a and b), SingLoRA's counterpart n; both
/// start at W*x (b = 0; SingLoRA with its ramp at u = 0) and a short Adam run fits the shifted target.
#[test]
fn scalar_toy_models() {
    use singlora::models::SingleLayer;
    use singlora::tasks::toy_regression;
    // More examples than width, so the held-out loss measures the fit of the rank-1 shift, not under-determination.
    let n = 64;
    let data = toy_regression::<f64>(n, 256, 64, 1).unwrap();
    for (method, count) in [(Method::Lora, n + 1), (Method::Singlora, n)] {
        let mut adapter = AdapterConfig::new(method).rank_alpha(1, 1.0);
        adapter.ramp = Ramp {
            steps: 2,
            u_min: 0.0,
        };
        let mut toy = SingleLayer::toy(n, &adapter, 1).unwrap();
        assert_eq!(toy.num_trainable(), count);
        let w_star = toy.layer.base().clone();
        assert_eq!(
            toy.forward(&data.x_test, 0.0).0,
            singlora::linalg::mm_nt(data.x_test.view(), w_star.view())
        );
        let tc = TrainConfig {
            optimizer: OptimizerConfig::new(Rule::adam(), 0.02),
            steps: 150,
            batch: None,
            ramp: adapter.ramp,
            width: n,
            ..TrainConfig::default()
        };
        let rec = train(&mut toy, &tc, &data).unwrap();
        assert!(
            rec.test_loss.last().unwrap() < &(rec.test_loss[0] / 4.0),
            "{method}: {:?}",
            (rec.test_loss[0], rec.test_loss.last())
        );
    }
}

/// Pre-training on a source task lowers the source loss, changes every base weight, and the adapted model built on
/// the pre-trained base starts exactly at it.
#[test]
fn pretrained_base() {
    use singlora::train::pretrain_mlp;
    let cfg = MlpConfig::new(32);
    let source = teacher_regression::<f64>(&Teacher {
        mlp: &cfg,
        base_seed: 1,
        layer: "input",
        kind: ShiftKind::Random,
        rank: 2,
        train: 64,
        test: 32,
        data_seed: 9,
    })
    .unwrap();
    let (weights, rec) = pretrain_mlp(&cfg, 1, &source, 40, 0.01).unwrap();
    assert!(rec.train_loss.last().unwrap() < &(rec.train_loss[0] / 2.0));
    let random = cfg.base_weights::<f64>(1);
    assert!(weights
        .iter()
        .zip(&random)
        .all(|(a, b)| a != b && a.dim() == b.dim()));
    let mut frozen = cfg.clone();
    frozen.adapt.clear();
    let pre = frozen
        .build(weights.clone(), &AdapterConfig::default(), 0)
        .unwrap();
    let net = cfg
        .build(
            weights,
            &AdapterConfig::new(Method::Lora).rank_alpha(2, 2.0),
            5,
        )
        .unwrap();
    assert_eq!(
        net.forward(&source.x_test, 1.0).0,
        pre.forward(&source.x_test, 1.0).0
    );
}

/// Classification smoke test: 40 Adam steps of SingLoRA on the teacher-classification task (4 classes, 512
/// examples) cut the held-out cross-entropy by at least a quarter and raise held-out accuracy above its start.
#[test]
fn short_classification_run_learns() {
    use singlora::tasks::teacher_classification;
    let mut cfg = MlpConfig::new(64);
    cfg.output_dim = 4;
    let data = teacher_classification::<f64>(&Teacher {
        mlp: &cfg,
        base_seed: 1,
        layer: "hidden.1",
        kind: ShiftKind::Asymmetric,
        rank: 2,
        train: 512,
        test: 256,
        data_seed: 2,
    })
    .unwrap();
    let mut net = cfg
        .build(
            cfg.base_weights::<f64>(1),
            &AdapterConfig::new(Method::Singlora).rank_alpha(4, 4.0),
            3,
        )
        .unwrap();
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::adam(), 0.02),
        steps: 40,
        batch: None,
        ramp: Ramp::default(),
        width: 64,
        ..TrainConfig::default()
    };
    let rec = train(&mut net, &tc, &data).unwrap();
    let (l0, l1) = (rec.test_loss[0], *rec.test_loss.last().unwrap());
    assert!(l1 < 0.75 * l0, "held-out CE {l0} → {l1}");
    assert!(rec.test_accuracy.last().unwrap() > &rec.test_accuracy[0]);
}

/// Sequence smoke test: LoRA (r = 4) on every map of a 2-block transformer learns one-pair associative recall — the
/// answer is the token two positions back, so attention is required — cutting the held-out cross-entropy (ln 16 ≈
/// 2.77 at the start) tenfold and reaching ≥ 90% held-out accuracy within 100 Adam steps.
#[test]
fn short_recall_run_learns() {
    use singlora::models::{TransformerConfig, WidthMode};
    use singlora::tasks::{associative_recall, RecallConfig};
    let recall = RecallConfig {
        keys: 8,
        values: 8,
        pairs: 1,
        permute: false,
    };
    let mut cfg = TransformerConfig::at_width(32, WidthMode::Heads, 8).unwrap();
    cfg.vocab = recall.vocab();
    cfg.seq_len = recall.seq_len();
    cfg.adapt = ["q", "k", "v", "o", "up", "down", "embed", "readout"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let data = associative_recall::<f64>(&recall, 128, 128, 1).unwrap();
    let mut net = cfg
        .build(
            cfg.base_weights::<f64>(0),
            &AdapterConfig::new(Method::Lora).rank_alpha(4, 4.0),
            2,
        )
        .unwrap();
    let tc = TrainConfig {
        optimizer: OptimizerConfig::new(Rule::adam(), 0.01),
        steps: 100,
        batch: None,
        ramp: Ramp::default(),
        width: 32,
        ..TrainConfig::default()
    };
    let rec = train(&mut net, &tc, &data).unwrap();
    let (l0, l1) = (rec.test_loss[0], *rec.test_loss.last().unwrap());
    assert!(l1 < l0 / 10.0, "held-out CE {l0} → {l1}");
    assert!(
        *rec.test_accuracy.last().unwrap() >= 0.9,
        "accuracy {:?}",
        rec.test_accuracy.last()
    );
}

/// Pre-training works for any inspectable model: a transformer with full updates on every map lowers its source
/// loss, and the adapted transformer built on the merged weights starts exactly at the pre-trained function.
#[test]
fn pretrained_transformer_base() {
    use singlora::models::TransformerConfig;
    use singlora::tasks::{associative_recall, RecallConfig};
    use singlora::train::pretrain;
    let recall = RecallConfig {
        keys: 4,
        values: 4,
        pairs: 1,
        permute: false,
    };
    let mut cfg = TransformerConfig::new(2, 4);
    cfg.vocab = recall.vocab();
    cfg.seq_len = recall.seq_len();
    let source = associative_recall::<f64>(&recall, 32, 16, 3).unwrap();
    let mut all = cfg.clone();
    all.adapt = ["embed", "readout", "q", "k", "v", "o", "up", "down"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut full = all
        .build(
            cfg.base_weights::<f64>(1),
            &AdapterConfig::new(Method::Full),
            0,
        )
        .unwrap();
    let (weights, rec) = pretrain(&mut full, &source, 30, 0.01, cfg.width()).unwrap();
    assert!(rec.train_loss.last().unwrap() < &(rec.train_loss[0] / 2.0));
    let (y_pre, _) = full.forward(&source.x_test, 1.0);
    let net = cfg
        .build(
            weights,
            &AdapterConfig::new(Method::Dora).rank_alpha(2, 2.0),
            4,
        )
        .unwrap();
    let (y, _) = net.forward(&source.x_test, 1.0);
    assert!(
        common::rel_err(&y, &y_pre) < 1e-12,
        "adapted model does not start at the pre-trained one"
    );
}
