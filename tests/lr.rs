//! The learning-rate study: it recovers a best rate and a drift exponent known in closed form, resumes without
//! recomputing, and refuses bad grids with one-line errors.
//!
//! The closed form. Full fine-tuning of LoRA+'s toy f(x) = (W* + D)x (D = 0 at the start, 1 × n) with one SGD step
//! at rate η on N examples: with residuals eᵢ = W*xᵢ − yᵢ and the gradient g = (1/N) Σ eᵢ xᵢ, the step gives
//! D = −η gᵀ and the loss after it is ½·mean(eᵢ − η gᵀxᵢ)², a parabola in η whose minimiser is
//! η* = mean(eᵢ gᵀxᵢ) / mean((gᵀxᵢ)²) = ‖g‖² / mean((gᵀxᵢ)²). The study's refined best rate is the vertex of the
//! parabola through three grid points, so for this loss it is η* itself, up to round-off. For n ≫ N the inputs are
//! nearly orthogonal with ‖xᵢ‖² ≈ n, so gᵀxⱼ ≈ eⱼ n/N and ‖g‖² ≈ (n/N²) Σ eᵢ²: η* ≈ N/n, a drift exponent of −1.

use std::path::PathBuf;

use singlora::linalg::mm_nt;
use singlora::studies::config::StudyConfig;
use singlora::studies::engine::{run_study, RunOptions};
use singlora::studies::fit::ols_slope;
use singlora::studies::lr::{analyse, best_rate, load, parabolic_window, window, LrStudy};
use singlora::tasks::toy_regression;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("singlora-lr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const WIDTHS: [usize; 4] = [256, 512, 1024, 2048];
const EXAMPLES: usize = 4;

/// The toy study: full fine-tuning, one SGD step, raw rates 2^(k/4) over η* ≈ N/n ∈ [2e-3, 1.6e-2].
fn toy_study(sets: &[&str]) -> StudyConfig {
    let mut all: Vec<String> = [
        "model=\"toy\"",
        "task={kind=\"toy\",examples=4,test_examples=4}",
        "widths=[256,512,1024,2048]",
        "seeds=[0,1,2]",
        "steps=1",
        "optimizer.rule={kind=\"sgd\"}",
        "arms=[{name=\"full\",method=\"full\"}]",
        "lr_exponents=[0]",
        "lr_grid={rates={from=5e-4,to=0.1,per_octave=4}}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(sets.iter().map(|s| s.to_string()));
    load(None, &all).unwrap()
}

/// η* = ‖g‖² / mean((gᵀxᵢ)²) for the toy of `width` and `seed` (the model's W* and the data share the seed's streams).
fn closed_form_best(width: usize, seed: u64) -> f64 {
    let data = toy_regression::<f64>(width, EXAMPLES, EXAMPLES, seed).unwrap();
    let w_star = singlora::rng::normal_matrix::<f64>(
        &mut singlora::rng::SeedRng::new(seed, "toy.w_star"),
        1,
        width,
        1.0 / (width as f64).sqrt(),
    );
    let e = &mm_nt(data.x_train.view(), w_star.view()) - &data.y_train; // N × 1
    let n = EXAMPLES as f64;
    let g = data.x_train.t().dot(&e) / n; // width × 1
    let gx = data.x_train.dot(&g); // N × 1
    let g2: f64 = g.iter().map(|v| v * v).sum();
    g2 / (gx.iter().map(|v| v * v).sum::<f64>() / n)
}

#[test]
fn recovers_the_closed_form_best_rate_and_its_drift() {
    let cfg = toy_study(&[]);
    let out = tmp("closed-form");
    let finished = run_study(&LrStudy(&cfg), &out, &RunOptions::default()).unwrap();
    let runs = finished.runs.into_iter().map(|f| (f.job, f.run)).collect();
    let r = analyse(&cfg, runs);
    let mut exact = Vec::new();
    for line in &r.lines {
        let seeds: Vec<f64> = cfg
            .seeds
            .iter()
            .map(|&s| closed_form_best(line.width, s))
            .collect();
        for (got, want) in line.seed_best.iter().zip(&seeds) {
            // The loss is exactly quadratic in η and the vertex formula is exact for a parabola: the only error is
            // round-off in three losses of size ~1 divided by a second difference of size ~(Δη)²·B; 1e-8 relative
            // is far above it and far below the grid spacing (2^(1/4) − 1 ≈ 19%).
            assert!(
                ((got - want) / want).abs() < 1e-8,
                "n = {}: refined η* {got} vs closed form {want}",
                line.width
            );
        }
        exact.push(seeds);
    }
    // The study's drift exponent is the fit of these per-seed rates; its point estimate is the OLS slope of the
    // per-width geometric mean, which must equal the closed form's to round-off…
    let drift = r.drifts[0].fit.as_ref().unwrap();
    let x: Vec<f64> = WIDTHS.iter().map(|&w| (w as f64).ln()).collect();
    let y: Vec<f64> = exact
        .iter()
        .map(|s| s.iter().map(|v| v.ln()).sum::<f64>() / s.len() as f64)
        .collect();
    let expected = ols_slope(&x, &y);
    assert!(
        (drift.slope - expected).abs() < 1e-8,
        "{} vs {expected}",
        drift.slope
    );
    // …and close to the asymptotic −1 of η* ≈ N/n. The leading correction is relative O(√(N/n)) per width
    // (the cross terms xᵢᵀxⱼ ~ √n against ‖xᵢ‖² ~ n, summed over N terms), which over n = 256…2048 with N = 4 is at
    // most √(4/256) = 0.125 at the narrow end and shrinks with n, so the slope is within 0.15 of −1.
    assert!((drift.slope + 1.0).abs() < 0.15, "drift {}", drift.slope);
    assert!(!r.drifts[0].at_edge, "the best rates sit inside the grid");
    let _ = std::fs::remove_dir_all(&out);
}

/// A finished study is loaded, not recomputed, and gives the same tables.
#[test]
fn resumes_without_recomputing() {
    let cfg = toy_study(&["widths=[256,512]", "seeds=[0]"]);
    let out = tmp("resume");
    let opts = RunOptions::default();
    let first = run_study(&LrStudy(&cfg), &out, &opts).unwrap();
    assert_eq!(first.computed, first.runs.len());
    let again = run_study(&LrStudy(&cfg), &out, &opts).unwrap();
    assert_eq!(again.computed, 0, "nothing recomputed");
    let losses = |f: &singlora::studies::engine::Finished<LrStudy<'_>>| -> Vec<u64> {
        f.runs.iter().map(|r| r.run.final_loss.to_bits()).collect()
    };
    assert_eq!(losses(&first), losses(&again));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_grids_are_refused() {
    let err = |grid: &str| {
        let sets = vec![format!("lr_grid={grid}")];
        load(None, &sets).unwrap_err().to_string()
    };
    for (grid, expected) in [
        ("{rates=[]}", "expected at least two rates"),
        ("{rates=[0.1]}", "expected at least two rates"),
        ("{rates=[0.1,-0.2]}", "expected finite rates > 0"),
        ("{rates=[0.1,0.05]}", "expected strictly increasing rates"),
        ("{rates=[0.1,0.1]}", "expected strictly increasing rates"),
        ("{rates={from=0.1,to=0.01,per_octave=2}}", "expected from and to finite with 0 < from < to"),
        ("{rates={from=0.1,to=1,per_octave=0}}", "per_octave ≥ 1"),
        ("{rates=[0.1,0.2],near_best=-1}", "invalid --set lr_grid.near_best = -1"),
        (
            "{rates=[0.1,0.2],loraplus={arm=\"singlora\",widths=[64],rates_a=[0.1,0.2],rates_b=[0.1,0.2]}}",
            "an arm with a LoRA-type method",
        ),
    ] {
        let e = err(grid);
        assert!(e.contains(expected), "{grid}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

/// The best-rate and window rules on hand-made losses.
#[test]
fn best_rate_and_window_rules() {
    let rates = [1.0, 2.0, 4.0, 8.0];
    // A parabola in η with vertex 3: the refined rate is exact.
    let losses: Vec<f64> = rates
        .iter()
        .map(|r: &f64| (r - 3.0).powi(2) + 1.0)
        .collect();
    let (k, eta) = best_rate(&rates, &losses).unwrap();
    assert_eq!(k, 1);
    assert!((eta - 3.0).abs() < 1e-12, "{eta}");
    // At the edge, the grid rate; diverged (∞) rates never win; all diverged: none.
    assert_eq!(best_rate(&rates, &[1.0, 2.0, 3.0, 4.0]), Some((0, 1.0)));
    assert_eq!(
        best_rate(&rates, &[5.0, 1.0, f64::INFINITY, 4.0]),
        Some((1, 2.0))
    );
    assert_eq!(best_rate(&rates, &[f64::INFINITY; 4]), None);
    // The window is the contiguous run within 1% of the best.
    assert_eq!(window(&rates, &[2.0, 1.005, 1.0, 1.2], 2, 0.01), (2.0, 4.0));
    assert_eq!(window(&rates, &[1.001, 2.0, 1.0, 1.2], 2, 0.01), (4.0, 4.0));
    // A loss exactly parabolic in u = log₂ η, L = 1 + (u − 2.2)²: within 1% of its minimum 1 over |u − 2.2| ≤ 0.1,
    // a window of 0.2 octaves, which the three-point parabola recovers exactly.
    let rates: Vec<f64> = (0..6).map(|k| 2f64.powi(k)).collect();
    let losses: Vec<f64> = (0..6).map(|k| 1.0 + (k as f64 - 2.2).powi(2)).collect();
    let w = parabolic_window(&rates, &losses, 2, 0.01).unwrap();
    assert!((w - 0.2).abs() < 1e-12, "{w}");
    assert_eq!(
        parabolic_window(&rates, &losses, 0, 0.01),
        None,
        "at the edge"
    );
}
