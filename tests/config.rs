//! Configs round-trip through the TOML a user edits, every field reaches the layer it configures (bug B5), and
//! malformed or unknown fields are rejected with their name.

use ndarray::Array2;
use singlora::adapters::{AdaptedLinear, AdapterConfig, DoraNorm, Init, Method, Ramp, Scaling};
use singlora::optim::{OptimizerConfig, Rule, Schedule};

fn custom() -> AdapterConfig {
    AdapterConfig {
        method: Method::SingloraDora,
        rank: 3,
        alpha: 6.0,
        scaling: Scaling::AlphaOverSqrtR,
        init: Some(Init::Gaussian {
            std: 0.5,
            beta: 0.25,
        }),
        init_b: Init::Zeros,
        dora_norm: DoraNorm::Full,
        dora_eps: 1e-9,
        ramp: Ramp {
            steps: 7,
            u_min: 0.1,
        },
        width: Some(16),
        multiplier_exponent: 0.5,
        role_ratio: 4.0,
    }
}

#[test]
fn adapter_config_round_trips_and_reaches_the_layer() {
    let cfg = custom();
    let text = toml::to_string(&cfg).unwrap();
    let back: AdapterConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg, "{text}");
    let layer = AdaptedLinear::<f64>::new(Array2::eye(10), &back, 0).unwrap();
    assert_eq!(layer.config, cfg);
    // s = α/√r · n^(−γ) = 6/√3 · 16^(−1/2).
    assert_eq!(layer.scale, 6.0 / 3f64.sqrt() / 4.0);
    assert_eq!(layer.param_info()[0].shape, [10, 3]);
    assert!(layer.magnitude.is_some());
    assert_eq!(layer.config.ramp.u(0), 0.1, "u_min floor");
    // Defaults written by hand in a file.
    let minimal: AdapterConfig = toml::from_str("method = \"singlora\"").unwrap();
    assert_eq!(minimal, AdapterConfig::new(Method::Singlora));
    assert_eq!(minimal.effective_init(), Init::WidthAware);
}

#[test]
fn optimizer_config_round_trips() {
    let mut cfg = OptimizerConfig::new(
        Rule::AdamW {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-12,
            weight_decay: 0.1,
        },
        3e-3,
    );
    cfg.schedule = Schedule::Cosine {
        warmup: 10,
        total: 100,
        min_ratio: 0.05,
    };
    cfg.groups.loraplus_ratio = 16.0;
    cfg.groups.one_d_in_b = false;
    cfg.groups.lr_exponent.insert("lora_a".into(), 1.0);
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(
        toml::from_str::<OptimizerConfig>(&text).unwrap(),
        cfg,
        "{text}"
    );
    let hand: OptimizerConfig =
        toml::from_str("lr = 0.01\nrule = { kind = \"sgd\", momentum = 0.9 }").unwrap();
    assert_eq!(
        hand.rule,
        Rule::Sgd {
            momentum: 0.9,
            weight_decay: 0.0
        }
    );
}

#[test]
fn malformed_configs_name_the_field() {
    let e = toml::from_str::<AdapterConfig>("method = \"singlora\"\nrnak = 4")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rnak"), "{e}");
    let e = toml::from_str::<AdapterConfig>("method = \"sinlora\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid method = sinlora"), "{e}");
    let e = toml::from_str::<AdapterConfig>("method = \"lora\"\ninit = \"gaussian(std=x)\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid init"), "{e}");
    let e = AdapterConfig::new(Method::Lora)
        .rank_alpha(0, 1.0)
        .validate(4, 4)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid rank = 0: expected an integer in 1..=4 (min(d_in, d_out) for this 4x4 layer)"
    );
}
