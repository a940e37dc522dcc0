//! The single-input SGD toy is exactly finite-dimensional, so a width-n network coupled to the limit (‖x‖² = n, the
//! same O(1) overlaps W*x, a₀ᵀx, b₀) must follow the limit recursion to round-off at every width — here through the
//! real code path: `SingleLayer::toy` (LoRA, rank 1, PEFT init), SGD with LoRA+'s rates η_a = η/n (lr_exponent
//! lora_a = 1) and η_b = η, and the common training loop.

use ndarray::Array2;
use singlora::adapters::{AdapterConfig, Method};
use singlora::linalg::mm_nt;
use singlora::models::{Model, SingleLayer};
use singlora::optim::{OptimizerConfig, Rule};
use singlora::rng::{normal_matrix, SeedRng};
use singlora::theory::limit::ToySgdLimit;
use singlora::train::{train, Dataset, Loss, TrainConfig};

#[test]
fn single_input_sgd_toy_matches_its_limit_to_round_off() {
    let (eta, steps, y) = (0.15, 40, 1.5);
    for n in [16usize, 256, 4096] {
        let adapter = AdapterConfig::new(Method::Lora).rank_alpha(1, 1.0);
        let mut toy = SingleLayer::<f64>::toy(n, &adapter, 7).unwrap();
        // b₀ ≠ 0 so both factors move from step 1.
        toy.params_mut()[1].fill(0.3);
        // Coupled input: Gaussian direction scaled to ‖x‖² = n exactly.
        let mut x: Array2<f64> = normal_matrix(&mut SeedRng::new(n as u64, "x"), 1, n, 1.0);
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.mapv_inplace(|v| v * (n as f64).sqrt() / norm);
        let w_x = mm_nt(x.view(), toy.layer.base().view())[[0, 0]];
        let a0 = toy.params()[0]
            .to_owned()
            .into_shape_with_order((1, n))
            .unwrap();
        let p0 = mm_nt(x.view(), a0.view())[[0, 0]];
        let data = Dataset {
            x_train: x.clone(),
            y_train: Array2::from_elem((1, 1), y),
            x_test: x,
            y_test: Array2::from_elem((1, 1), y),
            loss: Loss::Mse,
            rows_per_example: 1,
        };
        let mut opt = OptimizerConfig::new(Rule::sgd(), eta);
        opt.groups.lr_exponent.insert("lora_a".into(), 1.0);
        opt.groups.lr_exponent.insert("lora_b".into(), 0.0);
        let tc = TrainConfig {
            optimizer: opt,
            steps,
            batch: None,
            ramp: Default::default(),
            width: n,
        };
        let rec = train(&mut toy, &tc, &data).unwrap();
        // The limit: η_a‖x‖² = (η/n)·n = η.
        let limit = ToySgdLimit {
            w_x,
            y,
            p0,
            b0: 0.3,
            s: 1.0,
            eta_a_q: eta,
            eta_b: eta,
        }
        .trajectory(steps);
        assert!(
            limit.last().unwrap().loss < 0.8 * limit[0].loss,
            "n = {n}: the toy must actually learn ({:e} → {:e})",
            limit[0].loss,
            limit.last().unwrap().loss
        );
        // Compare residuals |f − y| = √(2L): O(1) numbers computed by cancellation, so round-off is absolute. Each step
        // adds ~ε·√n from the n-term dot products (1e-14 at n = 4096), and the escape from the saddle at b·p ≈ 0
        // amplifies earlier errors geometrically (up to ~100× over these steps): 1e-10 bounds that with room, while any
        // modelling difference (a wrong rate, scale or update order) gives O(1e-2) or more.
        for (t, (finite, lim)) in rec.train_loss.iter().zip(&limit).enumerate() {
            let (rf, rl) = ((2.0 * finite).sqrt(), (2.0 * lim.loss).sqrt());
            assert!(
                (rf - rl).abs() < 1e-10 * y,
                "n = {n}, t = {t}: residual {rf:e} (finite) vs {rl:e} (limit)"
            );
        }
    }
}

mod linear {
    use ndarray::Array1;
    use singlora::adapters::{AdapterConfig, Method};
    use singlora::optim::{OptimizerConfig, Rule};
    use singlora::theory::limit::coupled::{coupled_mlp, finite_trajectory, grams, order_params};
    use singlora::theory::limit::{Basis, LimitPoint, LinearSetup};

    fn setup(
        method: Method,
        rule: Rule,
        lr: f64,
        exps: &[(&str, f64)],
    ) -> (AdapterConfig, OptimizerConfig) {
        let adapter = AdapterConfig::new(method).rank_alpha(2, 2.0);
        let mut opt = OptimizerConfig::new(rule, lr);
        for (k, v) in exps {
            opt.groups.lr_exponent.insert((*k).into(), *v);
        }
        (adapter, opt)
    }

    fn dist(a: &[LimitPoint], b: &[LimitPoint]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(p, q)| {
                let rms = |x: Array1<f64>| (x.mapv(|v| v * v).mean().unwrap()).sqrt();
                let df = rms(&p.f - &q.f);
                let da = rms(&p.params.readout_overlap - &q.params.readout_overlap);
                let dz = rms((&p.params.bottleneck - &q.params.bottleneck)
                    .into_shape_with_order(p.params.bottleneck.len())
                    .unwrap());
                df.max(da).max(dz)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn scratch() {
        let cases = [
            (
                "lora+ sgd",
                setup(
                    Method::Lora,
                    Rule::sgd(),
                    0.5,
                    &[("lora_a", 1.0), ("lora_b", -1.0)],
                ),
            ),
            (
                "singlora sgd",
                setup(Method::Singlora, Rule::sgd(), 0.5, &[("default", 0.0)]),
            ),
            (
                "lora+ sign",
                setup(
                    Method::Lora,
                    Rule::SignSgd { weight_decay: 0.0 },
                    0.05,
                    &[("lora_a", 1.0), ("lora_b", 0.0)],
                ),
            ),
            (
                "lora shared sign",
                setup(
                    Method::Lora,
                    Rule::SignSgd { weight_decay: 0.0 },
                    0.05,
                    &[("default", 0.5)],
                ),
            ),
            (
                "singlora sign",
                setup(
                    Method::Singlora,
                    Rule::SignSgd { weight_decay: 0.0 },
                    0.05,
                    &[("default", 0.5)],
                ),
            ),
        ];
        for (name, (ad, opt)) in cases {
            let s = LinearSetup::new(&ad, &opt).unwrap();
            for seed in 0..3u64 {
                let basis = Basis::draw(&s, 16, 16, seed);
                let lim = s.limit(&basis, 20);
                let mut line = format!(
                    "{name} seed {seed}: L0 {:.3} L20 {:.3} |",
                    lim[0].loss, lim[20].loss
                );
                for n in [128usize, 512, 2048] {
                    let mlp = coupled_mlp(&s, &ad, &basis, n, seed).unwrap();
                    let op = order_params(&s, &mlp, &basis.x);
                    let (fin, div) = finite_trajectory(&s, &ad, &opt, &basis, n, seed, 20).unwrap();
                    let red = s
                        .reduced(&basis, &grams(&mlp, &basis.x), 20)
                        .map(|r| dist(&r, &fin))
                        .unwrap_or(f64::NAN);
                    line += &format!(
                        " n={n}: d={:.2e} red={:.1e} L={:.3} div={:?} z0err={:.1e};",
                        dist(&fin, &lim),
                        red,
                        fin[20].loss,
                        div,
                        (&op.bottleneck - &lim[0].params.bottleneck)
                            .mapv(f64::abs)
                            .sum()
                    );
                }
                println!("{line}");
            }
        }
    }
}
