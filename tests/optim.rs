//! Optimisers against hand-derived trajectories (PyTorch's `torch.optim` conventions), parameter groups (LoRA+,
//! the 1-D switch, width exponents), schedules, and the ramp's tie to the optimiser step (bug B3).

mod common;

use approx::assert_abs_diff_eq;
use common::{gaussian, random_layer};
use ndarray::ArrayD;
use singlora::adapters::{AdaptedLinear, AdapterConfig, DoraNorm, Method, Ramp, Role, Scaling};
use singlora::optim::{Groups, OptimizerConfig, Rule, Schedule, Slot};

/// Runs `steps` updates of one scalar parameter with a fixed gradient `g` and returns the trajectory.
fn scalar_run(rule: Rule, lr: f64, p0: f64, g: f64, steps: usize) -> Vec<f64> {
    let mut opt = OptimizerConfig::new(rule, lr).init().unwrap();
    let mut p = [p0];
    let grad = [g];
    (0..steps)
        .map(|_| {
            opt.step(&mut [Slot {
                value: &mut p,
                grad: &grad,
                lr_factor: 1.0,
            }]);
            p[0]
        })
        .collect()
}

/// SGD, μ = 0.9, g ≡ 1, η = 0.1: b = 1, 1.9, 2.71 ⇒ p = 0.9, 0.71, 0.439.
#[test]
fn sgd_momentum_trajectory() {
    let t = scalar_run(
        Rule::Sgd {
            momentum: 0.9,
            weight_decay: 0.0,
        },
        0.1,
        1.0,
        1.0,
        3,
    );
    assert_abs_diff_eq!(t[0], 0.9, epsilon = 1e-15);
    assert_abs_diff_eq!(t[1], 0.71, epsilon = 1e-15);
    assert_abs_diff_eq!(t[2], 0.439, epsilon = 1e-15);
    // L2 weight decay 0.1 with g = 0: g' = 0.1·p ⇒ p = 1 − 0.1·0.1 = 0.99.
    assert_abs_diff_eq!(
        scalar_run(
            Rule::Sgd {
                momentum: 0.0,
                weight_decay: 0.1
            },
            0.1,
            1.0,
            0.0,
            1
        )[0],
        0.99,
        epsilon = 1e-15
    );
}

/// Adam with a constant gradient: bias correction makes m̂ = g and v̂ = g² at every step, so each step moves
/// p by exactly η·g/(|g| + ε) = η (up to ε/|g| = 2e-8): 1 → 0.9 → 0.8 → 0.7.
#[test]
fn adam_bias_correction() {
    let t = scalar_run(Rule::adam(), 0.1, 1.0, 0.5, 3);
    for (k, expected) in [0.9, 0.8, 0.7].iter().enumerate() {
        assert_abs_diff_eq!(t[k], *expected, epsilon = 1e-8);
    }
    // Without bias correction the first step would be η·0.1g/√(0.001g²) ≈ 0.316η: make sure that is not what we do.
    assert!((t[0] - (1.0 - 0.0316)).abs() > 0.05);
}

/// Adam's L2 decay goes through the moments (g' = wd·p = 0.01 ⇒ a full η step), AdamW's is decoupled
/// (p −= η·wd·p = 0.001, then a zero-gradient Adam step, which is 0).
#[test]
fn adam_vs_adamw_weight_decay() {
    let adam = scalar_run(
        Rule::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        0.1,
        1.0,
        0.0,
        1,
    )[0];
    let adamw = scalar_run(
        Rule::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        0.1,
        1.0,
        0.0,
        1,
    )[0];
    assert_abs_diff_eq!(adam, 0.9, epsilon = 1e-6);
    assert_abs_diff_eq!(adamw, 0.999, epsilon = 1e-15);
}

/// sign-SGD moves by η·sign(g) whatever |g|; zero gradients stay put.
#[test]
fn sign_sgd() {
    assert_eq!(
        scalar_run(Rule::SignSgd { weight_decay: 0.0 }, 0.25, 1.0, 1e-9, 2),
        vec![0.75, 0.5]
    );
    assert_eq!(
        scalar_run(Rule::SignSgd { weight_decay: 0.0 }, 0.25, 1.0, -3.0, 1),
        vec![1.25]
    );
    assert_eq!(
        scalar_run(Rule::SignSgd { weight_decay: 0.0 }, 0.25, 1.0, 0.0, 1),
        vec![1.0]
    );
}

/// "sign-Adam": Adam with β₁ = β₂ = 0 and ε → 0 is sign-SGD (its step is g/(|g| + ε)), the rule the infinite-width
/// limits use; with the default moments it is not, once gradients change sign. Gradients 3, −0.5, 2e-6, −7 with
/// ε = 1e-30: each step differs from η·sign(g) by η·ε/|g| ≤ 1e-24, so 1e-15 is round-off. Default Adam's second
/// direction is m̂₂/√v̂₂ = ((0.27 − 0.05)/0.19) / √((0.008991 + 0.00025)/0.001999) ≈ +0.54 instead of sign(−0.5) = −1,
/// so its p₂ differs from sign-SGD's by 0.1·1.54 ≈ 0.15.
#[test]
fn adam_without_moments_is_sign_sgd() {
    let grads = [3.0, -0.5, 2e-6, -7.0];
    let run = |rule: Rule| -> Vec<f64> {
        let mut opt = OptimizerConfig::new(rule, 0.1).init().unwrap();
        let mut p = [1.0];
        grads
            .iter()
            .map(|&g| {
                opt.step(&mut [Slot {
                    value: &mut p,
                    grad: &[g],
                    lr_factor: 1.0,
                }]);
                p[0]
            })
            .collect()
    };
    let sign = run(Rule::SignSgd { weight_decay: 0.0 });
    let no_moments = run(Rule::Adam {
        beta1: 0.0,
        beta2: 0.0,
        eps: 1e-30,
        weight_decay: 0.0,
    });
    for (a, b) in sign.iter().zip(&no_moments) {
        assert_abs_diff_eq!(a, b, epsilon = 1e-15);
    }
    assert_abs_diff_eq!(sign[3], 1.0 - 0.1 + 0.1 - 0.1 + 0.1, epsilon = 1e-15);
    let adam = run(Rule::adam());
    assert_abs_diff_eq!(adam[1] - sign[1], -0.154, epsilon = 2e-3);
    assert!(
        (adam[1] - sign[1]).abs() > 0.05,
        "default Adam is not sign descent: {adam:?} vs {sign:?}"
    );
}

#[test]
fn schedules() {
    let w = Schedule::LinearWarmup { warmup: 4 };
    assert_eq!(
        [w.factor(1), w.factor(2), w.factor(4), w.factor(9)],
        [0.25, 0.5, 1.0, 1.0]
    );
    let c = Schedule::Cosine {
        warmup: 2,
        total: 12,
        min_ratio: 0.1,
    };
    assert_eq!(c.factor(1), 0.5);
    assert_eq!(c.factor(2), 1.0);
    assert_abs_diff_eq!(c.factor(7), 0.55, epsilon = 1e-15); // halfway: 0.1 + 0.9·½
    assert_abs_diff_eq!(c.factor(12), 0.1, epsilon = 1e-15);
    assert_abs_diff_eq!(c.factor(50), 0.1, epsilon = 1e-15);
    assert!(Schedule::Cosine {
        warmup: 5,
        total: 5,
        min_ratio: 0.0
    }
    .validate()
    .is_err());
}

/// LoRA+: B's rate is ratio × A's; the 1-D switch decides the magnitude's group (PEFT's default puts it in B's,
/// bug B16); width exponents multiply by n^(−c).
#[test]
fn parameter_groups() {
    let mut g = Groups {
        loraplus_ratio: 16.0,
        ..Groups::default()
    };
    assert_eq!(g.factor(Role::LoraA, 64), 1.0);
    assert_eq!(g.factor(Role::LoraB, 64), 16.0);
    assert_eq!(
        g.factor(Role::Magnitude, 64),
        16.0,
        "PEFT default: 1-D tensors join B's group"
    );
    assert_eq!(g.factor(Role::Bias, 64), 16.0);
    g.one_d_in_b = false;
    assert_eq!(g.factor(Role::Magnitude, 64), 1.0);
    g.lr_exponent.insert("lora_a".into(), 1.0);
    g.lr_exponent.insert("default".into(), 0.5);
    assert_eq!(g.factor(Role::LoraA, 256), 1.0 / 256.0);
    assert_eq!(g.factor(Role::LoraB, 256), 16.0 / 16.0);
    assert_eq!(g.factor(Role::SingleA, 256), 1.0 / 16.0);
    g.lr_exponent.insert("lora_c".into(), 1.0);
    assert!(g.validate().unwrap_err().to_string().contains("lora_c"));
}

/// In a real step of a DoRA layer with SGD, each tensor moves by exactly −η·factor·grad: B and the magnitude by
/// 16η (LoRA+ ratio 16, PEFT grouping), A by η. Guards against a ratio silently ignored or put on A (bug B15).
#[test]
fn loraplus_rates_reach_the_tensors() {
    let mut layer = random_layer(
        Method::Dora,
        6,
        5,
        2,
        Scaling::AlphaOverR,
        DoraNorm::Detached,
        3,
    );
    let x = gaussian(4, 6, 3, "x");
    let g = gaussian(4, 5, 3, "g");
    let grads = layer.backward(x.view(), g.view(), 1.0);
    let before: Vec<ArrayD<f64>> = layer.params().iter().map(|p| p.to_owned()).collect();
    let mut cfg = OptimizerConfig::new(Rule::sgd(), 0.01);
    cfg.groups.loraplus_ratio = 16.0;
    let mut opt = cfg.init().unwrap();
    opt.step_layer(&mut layer, &grads.params, 6);
    let names: Vec<&str> = layer.param_info().iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        ["lora_A.weight", "lora_B.weight", "lora_magnitude_vector"]
    );
    for (k, factor) in [1.0, 16.0, 16.0].into_iter().enumerate() {
        let moved = &before[k] - &layer.params()[k];
        let expected = &grads.params[k] * (0.01 * factor);
        assert_abs_diff_eq!(moved, expected, epsilon = 1e-15);
    }
}

/// The ramp reads the optimiser's step counter: forwards, backwards and accumulated micro-batches never advance it;
/// u(0) = 0, ΔW(T/2) = ½ΔW(T), and u saturates at 1 (bug B3).
#[test]
fn ramp_follows_optimizer_steps_only() {
    let ramp = Ramp {
        steps: 4,
        u_min: 0.0,
    };
    assert_eq!(
        [ramp.u(0), ramp.u(1), ramp.u(2), ramp.u(4), ramp.u(100)],
        [0.0, 0.25, 0.5, 1.0, 1.0]
    );
    assert_eq!(Ramp::default().u(0), 1.0, "T = 0 means no ramp");
    let mut cfg = AdapterConfig::new(Method::Singlora).rank_alpha(2, 2.0);
    cfg.ramp = ramp;
    let mut layer = AdaptedLinear::<f64>::new(gaussian(5, 5, 1, "w0"), &cfg, 1).unwrap();
    let half = layer.delta_w(ramp.u(2));
    let full = layer.delta_w(ramp.u(4));
    assert_abs_diff_eq!(half * 2.0, full, epsilon = 1e-15);
    let mut opt = OptimizerConfig::new(Rule::adam(), 1e-2).init().unwrap();
    let x = gaussian(3, 5, 1, "x");
    let g = gaussian(3, 5, 1, "g");
    // Three micro-batches accumulated, many forwards: still step 0, u = 0, zero gradient for A.
    let mut acc: Option<Vec<ArrayD<f64>>> = None;
    for _ in 0..3 {
        let _ = layer.forward(x.view(), ramp.u(opt.steps_taken()));
        let gr = layer
            .backward(x.view(), g.view(), ramp.u(opt.steps_taken()))
            .params;
        acc = Some(match acc {
            None => gr,
            Some(a) => a.iter().zip(&gr).map(|(p, q)| p + q).collect(),
        });
    }
    assert_eq!(opt.steps_taken(), 0);
    assert_eq!(ramp.u(opt.steps_taken()), 0.0);
    // At u = 0 SingLoRA's A receives no gradient: without the ramp advancing it would be dead for ever (bug B4).
    assert!(acc.as_ref().unwrap()[0].iter().all(|&v| v == 0.0));
    opt.step_layer(&mut layer, &acc.unwrap(), 5);
    assert_eq!(opt.steps_taken(), 1);
    assert_eq!(ramp.u(opt.steps_taken()), 0.25);
    assert!(layer
        .backward(x.view(), g.view(), ramp.u(opt.steps_taken()))
        .params[0]
        .iter()
        .any(|&v| v != 0.0));
}

#[test]
fn bad_optimizer_values_name_themselves() {
    let e = OptimizerConfig::new(Rule::adam(), 0.0)
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(e, "invalid lr = 0: expected a finite number > 0");
    let e = OptimizerConfig::new(Rule::adam(), -1.0)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr = -1"), "{e}");
    let e = OptimizerConfig::new(
        Rule::Adam {
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        0.1,
    )
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("optimizer.beta1 = 1"), "{e}");
    assert!(Rule::from_name("adagrad")
        .unwrap_err()
        .to_string()
        .contains("sgd, adam, adamw, sign_sgd"));
}

/// Adam and AdamW, element by element as the formula reads (the loop the optimiser ran before its vectorised
/// kernel): the reference for [`adam_kernel_is_the_formula_bit_for_bit`].
fn adam_reference<T: singlora::Scalar>(
    decoupled: bool,
    (lr, beta1, beta2, eps, weight_decay): (f64, f64, f64, f64, f64),
    t: u64,
    p: &mut [T],
    g: &[T],
    (m, v): (&mut [f64], &mut [f64]),
) {
    let bc1 = 1.0 - beta1.powi(t as i32);
    let bc2 = 1.0 - beta2.powi(t as i32);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mut pv = p.f64();
        let mut g = g.f64();
        if decoupled {
            pv -= lr * weight_decay * pv;
        } else {
            g += weight_decay * pv;
        }
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        let m_hat = *m / bc1;
        let v_hat = *v / bc2;
        *p = T::of(pv - lr * m_hat / (v_hat.sqrt() + eps));
    }
}

fn check_adam_kernel<T: singlora::Scalar>() {
    let hp = (0.03, 0.9, 0.999, 1e-8, 0.01);
    for decoupled in [false, true] {
        let rule = if decoupled {
            Rule::AdamW {
                beta1: hp.1,
                beta2: hp.2,
                eps: hp.3,
                weight_decay: hp.4,
            }
        } else {
            Rule::Adam {
                beta1: hp.1,
                beta2: hp.2,
                eps: hp.3,
                weight_decay: hp.4,
            }
        };
        // Lengths around the vector widths (1, 2, 4, 8, 16 lanes), a long one, and one the kernel splits into two parts
        // of odd length on two threads (split at any cost per element: it has more than scalar::PAR_MIN_OPS elements).
        for len in [1usize, 3, 4, 5, 17, 1001, 65_537] {
            let p0: Vec<T> = gaussian(1, len, len as u64, "p")
                .iter()
                .map(|&x| T::of(x))
                .collect();
            let mut opt = OptimizerConfig::new(rule, hp.0).init().unwrap();
            let (mut p, mut q) = (p0.clone(), p0);
            let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
            for t in 1..=4u64 {
                let g: Vec<T> = gaussian(1, len, 100 + t, "g")
                    .iter()
                    .map(|&x| T::of(x))
                    .collect();
                opt.step(&mut [Slot {
                    value: &mut p,
                    grad: &g,
                    lr_factor: 1.0,
                }]);
                adam_reference(decoupled, hp, t, &mut q, &g, (&mut m, &mut v));
                let same = p
                    .iter()
                    .zip(&q)
                    .all(|(a, b)| a.f64().to_bits() == b.f64().to_bits());
                assert!(
                    same,
                    "{} decoupled={decoupled} len={len} step {t}: the kernel is not the formula",
                    T::DTYPE
                );
            }
        }
    }
}

/// The vectorised Adam kernel computes the formula operation for operation: bit for bit the scalar loop, for Adam and
/// AdamW with weight decay, f32 and f64, at lengths that leave every possible vector remainder, on one thread and
/// with a long tensor split over two.
#[test]
fn adam_kernel_is_the_formula_bit_for_bit() {
    check_adam_kernel::<f64>();
    check_adam_kernel::<f32>();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        singlora::scalar::with_product_threads(2, || {
            assert!(
                singlora::scalar::part_len(65_537, 1) < 65_537,
                "the long tensor is split"
            );
            check_adam_kernel::<f64>();
            check_adam_kernel::<f32>();
        })
    });
}

/// Every rule's update of a tensor long enough to be split over two threads (65 537 elements: odd parts) gives the
/// same bits as on one thread, after steps that exercise momentum, weight decay and the moments.
#[test]
fn every_rule_is_the_same_split_over_two_threads() {
    let len = 65_537;
    let rules = [
        Rule::Sgd {
            momentum: 0.9,
            weight_decay: 0.01,
        },
        Rule::SignSgd { weight_decay: 0.01 },
        Rule::adam(),
        Rule::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
    ];
    let run = |rule: &Rule| -> Vec<u64> {
        let mut p: Vec<f64> = gaussian(1, len, 7, "p").iter().copied().collect();
        let mut opt = OptimizerConfig::new(*rule, 0.01).init().unwrap();
        for t in 1..=3u64 {
            let g: Vec<f64> = gaussian(1, len, 10 + t, "g").iter().copied().collect();
            opt.step(&mut [Slot {
                value: &mut p,
                grad: &g,
                lr_factor: 1.0,
            }]);
        }
        p.iter().map(|v| v.to_bits()).collect()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // SGD and sign-SGD count 4 operations per element, the fewest of the rules: even they must be split here, or the
    // comparison below would set one thread against one thread.
    let split = pool.install(|| {
        singlora::scalar::with_product_threads(2, || singlora::scalar::part_len(len, 4))
    });
    assert!(
        split < len,
        "a {len}-element tensor is not split over two threads"
    );
    for rule in &rules {
        let one = run(rule);
        let two = pool.install(|| singlora::scalar::with_product_threads(2, || run(rule)));
        assert_eq!(one, two, "{rule:?}: two threads differ from one");
        let start: Vec<u64> = gaussian(1, len, 7, "p")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_ne!(one, start, "{rule:?}: the parameters did not move");
    }
}
