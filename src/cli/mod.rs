//! The `singlora` command line. It parses, calls the library and prints; every error is one line from
//! [`crate::Error`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::adapters::{AdapterConfig, DoraNorm, Init, Method, Scaling};
use crate::error::{Error, Result};
use crate::io::layer_dump::{dump_layer, DumpState, LayerDumpConfig};
use crate::io::write_atomic;
use crate::studies::synthetic::{fit, SyntheticConfig};

/// singlora: measure how low-rank adapters behave as networks get wider.
#[derive(Parser, Debug)]
#[command(name = "singlora", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write one adapted layer (inputs, outputs, parameters, every gradient) to a .safetensors file.
    ///
    /// LoRA naming follows PEFT: B = output side (d_out × r), zero-init, LR × ratio under LoRA+; A = input side
    /// (r × d_in). SingLoRA's A is (max(d_in, d_out) × r) and ΔW = s·u·A[:d_out]·A[:d_in]ᵀ.
    Layer(LayerArgs),
    /// Fit one adapted layer to PSD, NSD and asymmetric targets with LoRA and SingLoRA (THEORY §6.1).
    Synthetic(SyntheticArgs),
    /// Fine-tune an MLP of width n with an adapter on a teacher-student regression task.
    Train(TrainArgs),
    /// Run a width study: train every (arm, exponent, width, seed) cell with probes, fit width exponents, draw figures.
    ///
    /// With no arguments it runs configs/default.toml (embedded) into results/default. Running the same command again
    /// resumes: finished runs are loaded, not recomputed.
    Sweep(SweepArgs),
    /// Redraw the figures and tables of a finished sweep or limit folder.
    Plot(PlotArgs),
    /// Print the width exponents the theory predicts for every series of a study (initial state, first step, balanced
    /// regime, with derivations and conditions) and the stable rate exponent c*.
    Theory(TheoryArgs),
    /// Compute the n → ∞ training trajectory of a linear MLP with LoRA, LoRA+ or SingLoRA (SGD, sign-SGD), train
    /// finite widths coupled to it, fit how fast they converge, and draw both.
    ///
    /// With no arguments it runs configs/limit.toml (embedded) into results/limit. Running it again resumes.
    Limit(LimitArgs),
}

#[derive(Args, Debug)]
struct LimitArgs {
    /// Study file (TOML); default: the embedded configs/limit.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a field: --set steps=10 --set 'widths=[256,1024]' --set adapter.rank=4 (to change an arm, edit a copy
    /// of the file).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Run only these arms (repeatable; default: all). The output folder still holds the whole study: a later run of
    /// all arms reuses these runs.
    #[arg(long = "arm", value_name = "NAME")]
    arms: Vec<String>,
    /// Output folder (default results/NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Print the resolved config and exit.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
struct TheoryArgs {
    /// Study file (TOML); default: the embedded configs/default.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any field, as for sweep.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Predict for one layer of this shape family instead of the MLP's square hidden layer: square, tall:K
    /// (d_out = K·n), wide:K (d_in = K·n), fixed_in:D (d_in = D), fixed_out:D (d_out = D).
    #[arg(long)]
    shape: Option<String>,
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// Study file (TOML); default: the embedded configs/default.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any field: --set steps=4 --set adapter.rank=2 --set 'widths=[64,128,256]'.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Output folder (default results/NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Print the resolved config and the grid size, and exit.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// A folder written by `singlora sweep` or `singlora limit`.
    dir: PathBuf,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct TrainArgs {
    /// Model: mlp, transformer (task recall) or toy (LoRA+'s scalar toy, task toy).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Transformer: attention heads (width n = heads × head_dim).
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Transformer: key-value pairs per recall sequence (T = 2·pairs + 1).
    #[arg(long, default_value_t = 2)]
    pairs: usize,
    /// Hidden width n.
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// Number of hidden layers L (≥ 2).
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// relu, gelu, tanh or identity.
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Readout scale: standard (1/√n) or mup (1/n).
    #[arg(long, default_value = "mup")]
    readout: String,
    /// Comma-separated adapted layers. MLP: input, hidden.K, hidden (all), readout (default hidden.1).
    /// Transformer: q, k, v, o, up, down, block.K.q, embed, readout (default q,k,v,o,up,down).
    #[arg(long)]
    adapt: Option<String>,
    /// Adapter: full, lora, dora, singlora, singlora_dora.
    #[arg(long, default_value = "singlora")]
    method: String,
    /// Rank r.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 4.0)]
    alpha: f64,
    /// Use s = α/√r.
    #[arg(long)]
    rslora: bool,
    /// Ramp length T in optimiser steps (0: none).
    #[arg(long, default_value_t = 0)]
    ramp: u64,
    /// sgd, adam, adamw or sign_sgd.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Base learning rate η.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// LoRA+ ratio η_B/η_A.
    #[arg(long, default_value_t = 1.0)]
    loraplus_ratio: f64,
    /// Width exponent c of every rate: η·n^(−c).
    #[arg(long, default_value_t = 0.0)]
    lr_exponent: f64,
    /// Optimiser steps.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Mini-batch size (default: full batch).
    #[arg(long)]
    batch: Option<usize>,
    /// Streamed batches: every step sees fresh training examples (batch × steps of them are drawn, none repeats).
    /// Needs --batch.
    #[arg(long)]
    stream: bool,
    /// Task: regression (MSE) or classification (cross-entropy, accuracy) for the MLP; recall for the transformer;
    /// toy for the toy model.
    #[arg(long, default_value = "regression")]
    task: String,
    /// Number of classes (classification) or outputs (regression).
    #[arg(long, default_value_t = 1)]
    outputs: usize,
    /// Teacher shift: psd, nsd, asymmetric, random.
    #[arg(long, default_value = "psd")]
    shift: String,
    /// Layer carrying the teacher's shift.
    #[arg(long, default_value = "hidden.1")]
    shift_layer: String,
    /// Training / held-out examples.
    #[arg(long, default_value_t = 256)]
    examples: usize,
    /// Seed of base, data and adapter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Pre-train every base weight for this many Adam steps on a source task (same family, seed + 1000) before
    /// freezing it (0: random frozen base).
    #[arg(long, default_value_t = 0)]
    pretrain_steps: u64,
    /// Learning rate of the pre-training.
    #[arg(long, default_value_t = 0.01)]
    pretrain_lr: f64,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct LayerArgs {
    /// Adapter: full, lora, dora, singlora, singlora_dora.
    #[arg(long)]
    method: String,
    /// Input dimension d_in.
    #[arg(long)]
    d_in: usize,
    /// Output dimension d_out.
    #[arg(long)]
    d_out: usize,
    /// Rank r.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 4.0)]
    alpha: f64,
    /// Use s = α/√r (rsLoRA) instead of α/r.
    #[arg(long)]
    rslora: bool,
    /// Ramp value u in [0, 1] at which the layer is evaluated.
    #[arg(long, default_value_t = 1.0)]
    u: f64,
    /// DoRA norm gradient: detached (PEFT default) or full.
    #[arg(long, default_value = "detached")]
    dora_norm: String,
    /// Initialisation of the random factor (default: the method's).
    #[arg(long)]
    init: Option<String>,
    /// Batch size b.
    #[arg(long, default_value_t = 3)]
    batch: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// f32 or f64.
    #[arg(long, default_value = "f64")]
    dtype: String,
    /// init (freshly initialised) or random (every trainable tensor random).
    #[arg(long, default_value = "random")]
    state: String,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct SyntheticArgs {
    /// Width n of the square layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Adapter and target rank.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-2)]
    lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs the command line on `args` (including the program name).
pub fn run<I, S>(args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.print().ok();
            return Ok(());
        }
        Err(e) => {
            return Err(Error::Usage(
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_string(),
            ))
        }
    };
    match cli.command {
        Command::Layer(a) => layer(a),
        Command::Synthetic(a) => synthetic(a),
        Command::Train(a) => train_mlp(a),
        Command::Sweep(a) => sweep(a),
        Command::Plot(a) => plot(a),
        Command::Theory(a) => theory(a),
        Command::Limit(a) => limit(a),
    }
}

fn layer(a: LayerArgs) -> Result<()> {
    let method: Method = a.method.parse()?;
    let mut adapter = AdapterConfig::new(method).rank_alpha(a.rank, a.alpha);
    adapter.scaling = if a.rslora {
        Scaling::AlphaOverSqrtR
    } else {
        Scaling::AlphaOverR
    };
    adapter.dora_norm = a.dora_norm.parse::<DoraNorm>()?;
    if let Some(init) = &a.init {
        adapter.init = Some(init.parse::<Init>()?);
    }
    let cfg = LayerDumpConfig {
        adapter,
        d_in: a.d_in,
        d_out: a.d_out,
        batch: a.batch,
        u: a.u,
        state: a.state.parse::<DumpState>()?,
        seed: a.seed,
    };
    let bytes = match a.dtype.as_str() {
        "f64" => dump_layer::<f64>(&cfg)?,
        "f32" => dump_layer::<f32>(&cfg)?,
        other => return Err(Error::invalid("dtype", other, "f32 or f64")),
    };
    write_atomic(&a.out, &bytes)?;
    println!(
        "wrote {} ({} bytes): {} layer {}x{}, rank {}, u = {}",
        a.out.display(),
        bytes.len(),
        method,
        a.d_out,
        a.d_in,
        a.rank,
        a.u
    );
    Ok(())
}

fn synthetic(a: SyntheticArgs) -> Result<()> {
    let cfg = SyntheticConfig {
        width: a.width,
        rank: a.rank,
        steps: a.steps,
        lr: a.lr,
        seed: a.seed,
        ..Default::default()
    };
    if cfg.width == 0 {
        return Err(Error::invalid("width", 0, "a positive integer"));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(Error::invalid("lr", cfg.lr, "a finite number > 0"));
    }
    println!("Synthetic experiment (THEORY §6.1): one {n}x{n} layer, Y = X(W0 + ΔW*)ᵀ, rank-{r} shift, N = {N}, Adam lr {lr}, {s} steps, seed {seed}", n = cfg.width, r = cfg.rank, N = cfg.examples, lr = cfg.lr, s = cfg.steps, seed = cfg.seed);
    println!(
        "{:<12} {:<10} {:>14} {:>14} {:>14}",
        "target", "method", "initial loss", "final loss", "final/initial"
    );
    for target in [
        crate::tasks::ShiftKind::Psd,
        crate::tasks::ShiftKind::Nsd,
        crate::tasks::ShiftKind::Asymmetric,
    ] {
        for method in [Method::Lora, Method::Singlora] {
            let r = fit(&cfg, target, method)?;
            let note = r
                .diverged_at
                .map(|t| format!("  diverged at step {t}"))
                .unwrap_or_default();
            println!(
                "{:<12} {:<10} {:>14.4e} {:>14.4e} {:>14.4e}{note}",
                r.target,
                r.method,
                r.initial_loss,
                r.final_loss,
                r.ratio()
            );
        }
    }
    Ok(())
}

fn train_mlp(a: TrainArgs) -> Result<()> {
    match a.model.as_str() {
        "mlp" => {}
        "transformer" | "toy" => return train_other(a),
        other => return Err(Error::invalid("model", other, "mlp, transformer or toy")),
    }
    use crate::models::{MlpConfig, Model};
    use crate::tasks::{teacher_classification, teacher_regression, ShiftKind};
    use crate::train::{train, TrainConfig};
    let mlp = MlpConfig {
        width: a.width,
        depth: a.depth,
        activation: a.activation.parse()?,
        readout: a.readout.parse()?,
        adapt: split_list(a.adapt.as_deref().unwrap_or("hidden.1")),
        output_dim: if a.task == "classification" && a.outputs == 1 {
            4
        } else {
            a.outputs
        },
        ..MlpConfig::new(a.width)
    };
    mlp.validate()?;
    let (adapter, optimizer) = train_setup(&a)?;
    let shift = a.shift.parse::<ShiftKind>()?;
    let mut base = mlp.base_weights::<f64>(a.seed);
    if a.pretrain_steps > 0 {
        let source = teacher_regression::<f64>(
            &mlp,
            a.seed,
            &mlp.layer_names()[0],
            ShiftKind::Random,
            a.rank.min(a.width),
            a.examples,
            a.examples,
            a.seed + 1000,
        )?;
        let (w, rec) =
            crate::models::pretrain_mlp(&mlp, a.seed, &source, a.pretrain_steps, a.pretrain_lr)?;
        println!(
            "pre-trained the base for {} steps on a source task: loss {:.4e} → {:.4e}",
            a.pretrain_steps,
            rec.train_loss[0],
            rec.train_loss.last().copied().unwrap_or(f64::NAN)
        );
        base = w;
    }
    let mut net = mlp.build(base, &adapter, a.seed + 2)?;
    let data = match a.task.as_str() {
        "regression" => teacher_regression::<f64>(
            &mlp,
            a.seed,
            &a.shift_layer,
            shift,
            a.rank,
            train_examples(&a),
            a.examples,
            a.seed + 1,
        )?,
        "classification" => teacher_classification::<f64>(
            &mlp,
            a.seed,
            &a.shift_layer,
            shift,
            a.rank,
            train_examples(&a),
            a.examples,
            a.seed + 1,
        )?,
        other => {
            return Err(Error::invalid(
                "task",
                other,
                "regression or classification (for the MLP)",
            ))
        }
    };
    let tc = TrainConfig {
        optimizer,
        steps: a.steps,
        batch: a.batch,
        ramp: adapter.ramp,
        width: a.width,
    };
    println!(
        "MLP d0={} → {}×{} ({}) → {}, readout {}; {} on [{}], r={}, α={}, {} trainable; {} η={}·n^-{} ; teacher shift {} in {}",
        mlp.input_dim, a.depth, a.width, mlp.activation, mlp.output_dim, mlp.readout, adapter.method, mlp.adapt.join(","), a.rank, a.alpha,
        net.num_trainable(), a.optimizer, a.lr, a.lr_exponent, a.shift, a.shift_layer
    );
    let rec = train(&mut net, &tc, &data)?;
    print_record(&rec, a.steps);
    Ok(())
}

/// The adapter and optimiser of `singlora train`, validated.
fn train_setup(a: &TrainArgs) -> Result<(AdapterConfig, crate::optim::OptimizerConfig)> {
    use crate::optim::{OptimizerConfig, Rule};
    let mut adapter = AdapterConfig::new(a.method.parse()?).rank_alpha(a.rank, a.alpha);
    adapter.scaling = if a.rslora {
        Scaling::AlphaOverSqrtR
    } else {
        Scaling::AlphaOverR
    };
    adapter.ramp.steps = a.ramp;
    let mut optimizer = OptimizerConfig::new(Rule::from_name(&a.optimizer)?, a.lr);
    optimizer.groups.loraplus_ratio = a.loraplus_ratio;
    optimizer
        .groups
        .lr_exponent
        .insert("default".into(), a.lr_exponent);
    optimizer.validate()?;
    if a.steps == 0 {
        return Err(Error::invalid("steps", 0, "a positive integer"));
    }
    if a.examples == 0 || a.batch == Some(0) {
        return Err(Error::invalid(
            if a.examples == 0 { "examples" } else { "batch" },
            0,
            "a positive integer",
        ));
    }
    if a.model == "transformer" && (a.heads == 0 || !a.width.is_multiple_of(a.heads)) {
        return Err(Error::invalid(
            "heads",
            a.heads,
            &format!("a positive divisor of the width {}", a.width),
        ));
    }
    if !(a.pretrain_lr.is_finite() && a.pretrain_lr > 0.0) {
        return Err(Error::invalid(
            "pretrain_lr",
            a.pretrain_lr,
            "a finite number > 0",
        ));
    }
    if a.stream && a.batch.is_none() {
        return Err(Error::invalid(
            "stream",
            "true",
            "--batch B as well (each step then draws B fresh examples)",
        ));
    }
    Ok((adapter, optimizer))
}

/// Number of training examples: `--examples`, or batch × steps when streaming.
fn train_examples(a: &TrainArgs) -> usize {
    match (a.stream, a.batch) {
        (true, Some(b)) => b * a.steps as usize,
        _ => a.examples,
    }
}

/// `a,b, c` → `["a", "b", "c"]`.
fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Transformer on associative recall, or the scalar toy.
fn train_other(a: TrainArgs) -> Result<()> {
    use crate::models::{Model, SingleLayer, TransformerConfig, WidthMode};
    use crate::tasks::{associative_recall, toy_regression, RecallConfig};
    use crate::train::{train, TrainConfig};
    let (mut adapter, optimizer) = train_setup(&a)?;
    let tc = TrainConfig {
        optimizer,
        steps: a.steps,
        batch: a.batch,
        ramp: adapter.ramp,
        width: a.width,
    };
    let rec = if a.model == "transformer" {
        if a.task != "recall" && a.task != "regression" {
            return Err(Error::invalid(
                "task",
                &a.task,
                "recall (for the transformer)",
            ));
        }
        let recall = RecallConfig {
            keys: 8,
            values: 8,
            pairs: a.pairs,
        };
        let mut cfg =
            TransformerConfig::at_width(a.width, WidthMode::Heads, a.width / a.heads.max(1))?;
        cfg.vocab = recall.vocab();
        cfg.seq_len = recall.seq_len();
        cfg.adapt = split_list(a.adapt.as_deref().unwrap_or("q,k,v,o,up,down"));
        let data = associative_recall::<f64>(&recall, train_examples(&a), a.examples, a.seed + 1)?;
        let mut base = cfg.base_weights::<f64>(a.seed);
        if a.pretrain_steps > 0 {
            let mut all = cfg.clone();
            all.adapt = vec![
                "embed".into(),
                "readout".into(),
                "q".into(),
                "k".into(),
                "v".into(),
                "o".into(),
                "up".into(),
                "down".into(),
            ];
            let mut full =
                all.build(base, &AdapterConfig::new(crate::adapters::Method::Full), 0)?;
            let source = associative_recall::<f64>(&recall, a.examples, a.examples, a.seed + 1000)?;
            let (w, rec) = crate::models::pretrain(
                &mut full,
                &source,
                a.pretrain_steps,
                a.pretrain_lr,
                cfg.width(),
            )?;
            println!(
                "pre-trained the base for {} steps on a source recall task: loss {:.4e} → {:.4e}",
                a.pretrain_steps,
                rec.train_loss[0],
                rec.train_loss.last().copied().unwrap_or(f64::NAN)
            );
            base = w;
        }
        let mut net = cfg.build(base, &adapter, a.seed + 2)?;
        println!(
            "transformer: {} blocks, {} heads × {} = width {}, vocab {}, T = {}; {} on [{}], r={}, {} trainable; {} η={}; associative recall ({} pairs)",
            cfg.blocks, cfg.heads, cfg.head_dim, cfg.width(), cfg.vocab, cfg.seq_len, adapter.method, cfg.adapt.join(","), a.rank, net.num_trainable(), a.optimizer, a.lr, a.pairs
        );
        train(&mut net, &tc, &data)?
    } else {
        adapter.rank = 1;
        let data = toy_regression::<f64>(a.width, train_examples(&a), a.examples, a.seed)?;
        let mut toy = SingleLayer::toy(a.width, &adapter, a.seed)?;
        println!(
            "LoRA+ scalar toy f(x) = (W* + ΔW)x at width {}: {} rank 1, {} trainable; {} η={}",
            a.width,
            adapter.method,
            toy.num_trainable(),
            a.optimizer,
            a.lr
        );
        train(&mut toy, &tc, &data)?
    };
    print_record(&rec, a.steps);
    Ok(())
}

fn print_record(rec: &crate::train::TrainRecord, steps: u64) {
    let acc = !rec.test_accuracy.is_empty();
    println!(
        "{:>6} {:>14} {:>14}{}",
        "step",
        "train loss",
        "held-out loss",
        if acc { "  held-out acc" } else { "" }
    );
    let every = (steps / 10).max(1);
    for (t, (l, lt)) in rec.train_loss.iter().zip(&rec.test_loss).enumerate() {
        if (t as u64).is_multiple_of(every) || t + 1 == rec.train_loss.len() {
            let a = rec
                .test_accuracy
                .get(t)
                .map(|v| format!(" {v:>14.4}"))
                .unwrap_or_default();
            println!("{t:>6} {l:>14.6e} {lt:>14.6e}{a}");
        }
    }
    if let Some(t) = rec.diverged_at {
        println!("diverged at step {t} (non-finite loss or gradient); training stopped there");
    }
}

fn sweep(a: SweepArgs) -> Result<()> {
    use crate::studies::sweep::{run_sweep, SweepConfig};
    let cfg = SweepConfig::load(a.config.as_deref(), &a.sets)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&cfg.name));
    let cells = cfg.cells();
    if a.dry_run {
        print!("{}", toml::to_string(&cfg).unwrap_or_default());
        println!("# {} runs -> {}", cells.len(), out.display());
        return Ok(());
    }
    let pool = thread_pool(a.threads)?;
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| Error::io(&runs_dir, e))?;
    println!(
        "study {}: {} runs ({} series × {} widths × {} seeds), {} steps each -> {}",
        cfg.name,
        cells.len(),
        cells.len() / (cfg.widths.len() * cfg.seeds.len()),
        cfg.widths.len(),
        cfg.seeds.len(),
        cfg.steps,
        out.display()
    );
    let runs = pool.install(|| run_sweep(&cfg, &out, true))?;
    report(&cfg, &runs, &out)
}

fn report(
    cfg: &crate::studies::sweep::SweepConfig,
    runs: &[crate::studies::sweep::RunResult],
    out: &std::path::Path,
) -> Result<()> {
    use crate::studies::report::{fit_all, group, summary, write_tables};
    let grouped = group(cfg, runs);
    let fits = fit_all(cfg, &grouped);
    write_tables(out, runs, &fits)?;
    let layer = if cfg.model == "toy" {
        "layer".to_string()
    } else {
        cfg.mlp
            .adapt
            .first()
            .cloned()
            .unwrap_or_else(|| "hidden.1".into())
    };
    let figures = crate::plots::draw_sweep(cfg, &grouped, &fits, &layer, &out.join("figures"))?;
    println!("{}", summary(cfg, &grouped, &fits, &layer, "dz_rms"));
    let diverged: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            r.diverged_at
                .map(|t| format!("{} (step {t})", r.cell.key()))
        })
        .collect();
    if !diverged.is_empty() {
        println!(
            "diverged runs (recorded, not dropped): {}",
            diverged.join(", ")
        );
    }
    println!(
        "wrote {}/results.csv, fits.csv, manifest.json and {} figures in {}/figures",
        out.display(),
        figures,
        out.display()
    );
    Ok(())
}

fn plot(a: PlotArgs) -> Result<()> {
    use crate::studies::sweep::{RunResult, SweepConfig};
    let stamp = a.dir.join("config.toml");
    let text = std::fs::read_to_string(&stamp).map_err(|e| Error::io(&stamp, e))?;
    let cfg = match SweepConfig::from_toml(&text, &stamp) {
        Ok(cfg) => cfg,
        Err(sweep_error) => {
            // A limit study's folder: the arms whose runs are all finished are loaded and redrawn.
            use crate::studies::limit::{run_limit_study, LimitConfig};
            let Ok(study) = crate::studies::store::from_toml::<LimitConfig>(&text, &stamp) else {
                return Err(sweep_error);
            };
            let finished = study.finished_arms(&a.dir);
            if finished.is_empty() {
                return Err(Error::invalid(
                    "dir",
                    a.dir.display(),
                    "a study folder with at least one finished arm (run singlora limit --config DIR/config.toml --out DIR)",
                ));
            }
            let cfg = study.select(&finished)?;
            let results = run_limit_study(&cfg, &study, &a.dir)?;
            return limit_report(&cfg, &results, &a.dir);
        }
    };
    let mut runs = Vec::new();
    for cell in cfg.cells() {
        let p = a.dir.join("runs").join(format!("{}.json", cell.key()));
        let run: RunResult = crate::studies::store::read_json(&p)?;
        runs.push(run);
    }
    report(&cfg, &runs, &a.dir)
}

fn theory(a: TheoryArgs) -> Result<()> {
    use crate::studies::sweep::SweepConfig;
    use crate::theory::{Regime, Shape};
    let cfg = SweepConfig::load(a.config.as_deref(), &a.sets)?;
    let shape: Option<Shape> = a.shape.as_deref().map(str::parse).transpose()?;
    let layer = match (shape, cfg.theory_layer()) {
        (Some(s), _) => {
            let (d_in, d_out) = s.dims(1);
            let side = |d: usize, a: f64| {
                if a == 0.0 {
                    d.to_string()
                } else if d == 1 {
                    "n".to_string()
                } else {
                    format!("{d}n")
                }
            };
            format!(
                "one {s} layer (d_in = {}, d_out = {})",
                side(d_in, s.a_in()),
                side(d_out, s.a_out())
            )
        }
        (None, Some(l)) => format!("{l} (square)"),
        (None, None) => {
            "(none: the engine needs an MLP hidden layer, or --shape for one layer)".to_string()
        }
    };
    println!(
        "study {}: predicted width exponents at {layer}; derivations in src/theory",
        cfg.name
    );
    let covered = shape.is_some() || cfg.theory_layer().is_some();
    let mut seen = std::collections::BTreeSet::new();
    for cell in cfg.cells() {
        if !seen.insert(cell.series.clone()) {
            continue;
        }
        let mut setting = cfg.setting(&cell);
        if let Some(s) = shape {
            setting.shape = s;
        }
        println!(
            "{}  ({} {}, {}: a_in = {}, a_out = {}; ρ = {}, init std n^(−b) with b = {}, γ = {})",
            cell.series,
            cell.arm.method,
            cfg.optimizer.rule.name(),
            setting.shape,
            setting.shape.a_in(),
            setting.shape.a_out(),
            setting.rho(),
            setting
                .init_exponent()
                .map(|b| b.to_string())
                .unwrap_or_else(|| "—".into()),
            cfg.adapter.multiplier_exponent
        );
        let preds = if covered {
            setting.predictions()
        } else {
            Vec::new()
        };
        if preds.is_empty() {
            println!("    no prediction for this setting yet");
            continue;
        }
        for regime in [Regime::Init, Regime::FirstStep, Regime::Balanced] {
            let rows: Vec<_> = preds.iter().filter(|p| p.regime == regime).collect();
            if rows.is_empty() {
                continue;
            }
            println!(
                "  {}",
                match regime {
                    Regime::Init => "initial state (t = 0)",
                    Regime::FirstStep => "first step (t = 1)",
                    Regime::Balanced =>
                        "balanced (t ≫ 1 but O(1), after alignment; a sweep compares it at its last recorded step)",
                }
            );
            for p in &rows {
                println!(
                    "    {:<28} {:+.2}   {}",
                    p.quantity, p.exponent, p.derivation
                );
            }
            let mut conditions: Vec<&str> = Vec::new();
            for p in &rows {
                if !conditions.contains(&p.conditions.as_str()) {
                    conditions.push(&p.conditions);
                }
            }
            for c in conditions {
                println!("    holds if: {c}");
            }
        }
        match setting.stable_lr_exponent() {
            Some((c, why)) => println!("  stable learning-rate exponent c* = {c:.2}   {why}"),
            None => println!("  no stable learning-rate exponent: the initial output explodes"),
        }
        if let Some(v) = setting.verdict() {
            println!("  at these rates: {v}");
        }
    }
    Ok(())
}

fn limit(a: LimitArgs) -> Result<()> {
    use crate::studies::limit::{run_limit_study, LimitConfig};
    let study = LimitConfig::load(a.config.as_deref(), &a.sets)?;
    let cfg = study.select(&a.arms)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&cfg.name));
    if a.dry_run {
        print!("{}", toml::to_string(&cfg).unwrap_or_default());
        println!(
            "# {} finite runs -> {}",
            cfg.arms.len() * cfg.widths.len() * cfg.seeds.len(),
            out.display()
        );
        return Ok(());
    }
    let pool = thread_pool(a.threads)?;
    println!(
        "limit study {}: {} arms × {} widths × {} seeds, {} steps -> {}",
        cfg.name,
        cfg.arms.len(),
        cfg.widths.len(),
        cfg.seeds.len(),
        cfg.steps,
        out.display()
    );
    let results = pool.install(|| run_limit_study(&cfg, &study, &out))?;
    limit_report(&cfg, &results, &out)
}

/// Prints a limit study's summary and draws its figures.
fn limit_report(
    cfg: &crate::studies::limit::LimitConfig,
    results: &crate::studies::limit::LimitResults,
    out: &std::path::Path,
) -> Result<()> {
    use crate::studies::limit::EXPECTED_SLOPE;
    println!(
        "{:<16} {:>22}   {:>28}   {:<9}  exact SGD reduction",
        "arm",
        format!("limit loss t=0 → {}", cfg.steps),
        format!("distance ~ n^p: p [95% CI]"),
        format!("vs {EXPECTED_SLOPE:+}")
    );
    for (arm, conv) in cfg.arms.iter().zip(&results.convergence) {
        let losses: Vec<(f64, f64)> = cfg
            .seeds
            .iter()
            .map(|&s| {
                let l = &results.limits[&(arm.name.clone(), s)].loss;
                (l[0], *l.last().expect("t = 0"))
            })
            .collect();
        let k = losses.len() as f64;
        let (l0, lt) = losses
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / k, b + y / k));
        let fit = conv
            .fit
            .as_ref()
            .map(|f| format!("{:+.2} [{:+.2}, {:+.2}]", f.slope, f.lo, f.hi))
            .unwrap_or_else(|| "no fit".into());
        let red = match (conv.reduction_error, arm.rule) {
            (Some(e), _) => format!("max error {e:.1e}"),
            (None, crate::optim::Rule::SignSgd { .. }) => "— (sign updates leave the span)".into(),
            (None, _) => "— (every run diverged)".into(),
        };
        println!(
            "{:<16} {:>22}   {:>28}   {:<9}  {red}",
            arm.name,
            format!("{l0:.3} → {lt:.3}"),
            fit,
            conv.agreement.unwrap_or("—")
        );
        if !conv.diverged.is_empty() {
            println!("    diverged: {}", conv.diverged.join("; "));
        }
    }
    let figures = crate::plots::limit::draw_limit(cfg, results, &out.join("figures"))?;
    println!(
        "wrote {0}/trajectories.csv, convergence.csv, convergence_fits.csv and {figures} figures in {0}/figures",
        out.display()
    );
    Ok(())
}

/// The worker pool of a study: `threads` workers, or one per core. Each run is single-threaded, so results never
/// depend on it.
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    if threads == Some(0) {
        return Err(Error::invalid("threads", 0, "a positive integer"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::invalid("threads", e, "a usable thread count"))
}
