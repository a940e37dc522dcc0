//! Every initialisation option's statistics with fixed seeds: mean, variance, distribution shape
//! (Kolmogorov–Smirnov), and how the variance scales with width (fitted log-log slope). PEFT tests only the first
//! three, on one size; the width exponent is what decides P7 (bug B2).
//!
//! Tolerances, for N i.i.d. draws of variance σ²: the sample mean has std σ/√N, so |mean| ≤ 5σ/√N; the sample
//! variance has relative std √((κ−1)/N) with kurtosis κ = 1.8 (uniform) or 3 (normal), so we allow 5 of those. The
//! KS statistic's 1% critical value is 1.63/√N. Width slopes: variances at m = 64…4096 with r = 16 have relative
//! error ≤ √2/√1024 = 4.4%, i.e. ≤ 0.044 in log; over a log-width span of ln 64 = 4.16 the OLS slope error is
//! ≤ ≈ 0.02, so we allow 0.06.

use ndarray::{Array2, ArrayD};
use singlora::adapters::{AdaptedLinear, AdapterConfig, Init, Method};

fn drawn(method: Method, init: Init, d_in: usize, d_out: usize, r: usize, seed: u64) -> Vec<f64> {
    let cfg = AdapterConfig::new(method).rank_alpha(r, 1.0).init(init);
    let layer = AdaptedLinear::<f64>::new(Array2::zeros((d_out, d_in)), &cfg, seed).unwrap();
    let p: ArrayD<f64> = layer.params()[0].to_owned();
    p.iter().copied().collect()
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0),
    )
}

/// erf by Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7, far below the KS critical value ~1e-2).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

fn ks(v: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    s.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

fn check_distribution(v: &[f64], var: f64, uniform: bool, what: &str) {
    let n = v.len() as f64;
    let (mean, s2) = mean_var(v);
    let kurt = if uniform { 1.8 } else { 3.0 };
    assert!(
        mean.abs() <= 5.0 * (var / n).sqrt(),
        "{what}: mean {mean:e}"
    );
    assert!(
        (s2 / var - 1.0).abs() <= 5.0 * ((kurt - 1.0) / n).sqrt(),
        "{what}: variance {s2:e} vs {var:e}"
    );
    let d = if uniform {
        let b = (3.0 * var).sqrt();
        assert!(
            v.iter().all(|x| x.abs() <= b),
            "{what}: a draw outside ±{b}"
        );
        ks(v, |x| ((x + b) / (2.0 * b)).clamp(0.0, 1.0))
    } else {
        ks(v, |x| 0.5 * (1.0 + erf(x / (2.0 * var).sqrt())))
    };
    assert!(
        d <= 1.63 / n.sqrt(),
        "{what}: KS statistic {d} above the 1% critical value"
    );
    // And the other family is rejected, so the KS check has power: uniform vs normal of the same variance.
    let other = if uniform {
        ks(v, |x| 0.5 * (1.0 + erf(x / (2.0 * var).sqrt())))
    } else {
        let b = (3.0 * var).sqrt();
        ks(v, |x| ((x + b) / (2.0 * b)).clamp(0.0, 1.0))
    };
    assert!(
        other > 1.63 / n.sqrt(),
        "{what}: KS cannot tell uniform from normal ({other})"
    );
}

#[test]
fn each_init_has_its_documented_distribution() {
    // PEFT kaiming-uniform on lora_A (8 × 1000): U(±1/√1000), variance 1/3000.
    check_distribution(
        &drawn(Method::Lora, Init::KaimingUniform, 1000, 1000, 8, 1),
        1.0 / 3000.0,
        true,
        "kaiming_uniform",
    );
    // PEFT gaussian: std 1/r.
    check_distribution(
        &drawn(Method::Lora, Init::PeftGaussian, 1000, 1000, 8, 2),
        1.0 / 64.0,
        false,
        "peft_gaussian",
    );
    // SingLoRA width-aware on A (1000 × 8): N(0, 1/m).
    check_distribution(
        &drawn(Method::Singlora, Init::WidthAware, 1000, 600, 8, 3),
        1.0 / 1000.0,
        false,
        "width_aware",
    );
    // SingLoRA kaiming-r: U(±1/√r), variance 1/(3r).
    check_distribution(
        &drawn(Method::Singlora, Init::KaimingR, 1000, 1000, 8, 4),
        1.0 / 24.0,
        true,
        "kaiming_r",
    );
    // Explicit std·n^(−β): 2·1000^(−1/4).
    let std = 2.0 * 1000f64.powf(-0.25);
    check_distribution(
        &drawn(
            Method::Singlora,
            Init::Gaussian {
                std: 2.0,
                beta: 0.25,
            },
            1000,
            1000,
            8,
            5,
        ),
        std * std,
        false,
        "gaussian(2, 1/4)",
    );
    // LoRA's B starts at zero under every A init.
    let cfg = AdapterConfig::new(Method::Lora).rank_alpha(4, 1.0);
    let layer = AdaptedLinear::<f64>::new(Array2::zeros((50, 40)), &cfg, 0).unwrap();
    assert!(layer.params()[1].iter().all(|&v| v == 0.0));
}

/// OLS slope of log(variance) against log(width).
fn width_slope(init: Init, method: Method) -> f64 {
    let widths = [64usize, 256, 1024, 4096];
    let pts: Vec<(f64, f64)> = widths
        .iter()
        .map(|&m| {
            let v = drawn(method, init, m, m, 16, m as u64);
            ((m as f64).ln(), mean_var(&v).1.ln())
        })
        .collect();
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / 4.0,
        pts.iter().map(|p| p.1).sum::<f64>() / 4.0,
    );
    pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
        / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>()
}

#[test]
fn init_variance_width_exponents() {
    for (init, method, expected) in [
        (Init::KaimingUniform, Method::Lora, -1.0),
        (Init::PeftGaussian, Method::Lora, 0.0),
        (Init::WidthAware, Method::Singlora, -1.0),
        (Init::KaimingR, Method::Singlora, 0.0),
        (
            Init::Gaussian {
                std: 1.0,
                beta: 0.25,
            },
            Method::Singlora,
            -0.5,
        ),
    ] {
        let slope = width_slope(init, method);
        assert!(
            (slope - expected).abs() <= 0.06,
            "{init}: variance ∝ n^{slope:.3}, expected n^{expected}"
        );
    }
}
