//! The `singlora` command line. It parses, calls the library and prints; every error is one line from
//! [`crate::Error`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::adapters::{AdapterConfig, DoraNorm, Init, Method, Scaling};
use crate::error::{Error, Result};
use crate::io::layer_dump::{dump_layer, DumpState, LayerDumpConfig};
use crate::io::write_atomic;
use crate::studies::synthetic::{fit, SyntheticConfig, TargetShift};

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
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            e.print().ok();
            return Ok(());
        }
        Err(e) => return Err(Error::Usage(e.to_string().lines().next().unwrap_or("").trim_start_matches("error: ").to_string())),
    };
    match cli.command {
        Command::Layer(a) => layer(a),
        Command::Synthetic(a) => synthetic(a),
    }
}

fn layer(a: LayerArgs) -> Result<()> {
    let method: Method = a.method.parse()?;
    let mut adapter = AdapterConfig::new(method).rank_alpha(a.rank, a.alpha);
    adapter.scaling = if a.rslora { Scaling::AlphaOverSqrtR } else { Scaling::AlphaOverR };
    adapter.dora_norm = a.dora_norm.parse::<DoraNorm>()?;
    if let Some(init) = &a.init {
        adapter.init = Some(init.parse::<Init>()?);
    }
    let cfg = LayerDumpConfig { adapter, d_in: a.d_in, d_out: a.d_out, batch: a.batch, u: a.u, state: a.state.parse::<DumpState>()?, seed: a.seed };
    let bytes = match a.dtype.as_str() {
        "f64" => dump_layer::<f64>(&cfg)?,
        "f32" => dump_layer::<f32>(&cfg)?,
        other => return Err(Error::invalid("dtype", other, "f32 or f64")),
    };
    write_atomic(&a.out, &bytes)?;
    println!("wrote {} ({} bytes): {} layer {}x{}, rank {}, u = {}", a.out.display(), bytes.len(), method, a.d_out, a.d_in, a.rank, a.u);
    Ok(())
}

fn synthetic(a: SyntheticArgs) -> Result<()> {
    let cfg = SyntheticConfig { width: a.width, rank: a.rank, steps: a.steps, lr: a.lr, seed: a.seed, ..Default::default() };
    if cfg.width == 0 {
        return Err(Error::invalid("width", 0, "a positive integer"));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(Error::invalid("lr", cfg.lr, "a finite number > 0"));
    }
    println!("Synthetic experiment (THEORY §6.1): one {n}x{n} layer, Y = X(W0 + ΔW*)ᵀ, rank-{r} shift, N = {N}, Adam lr {lr}, {s} steps, seed {seed}", n = cfg.width, r = cfg.rank, N = cfg.examples, lr = cfg.lr, s = cfg.steps, seed = cfg.seed);
    println!("{:<12} {:<10} {:>14} {:>14} {:>14}", "target", "method", "initial loss", "final loss", "final/initial");
    for target in TargetShift::ALL {
        for method in [Method::Lora, Method::Singlora] {
            let r = fit(&cfg, target, method)?;
            let note = r.diverged_at.map(|t| format!("  diverged at step {t}")).unwrap_or_default();
            println!("{:<12} {:<10} {:>14.4e} {:>14.4e} {:>14.4e}{note}", r.target, r.method, r.initial_loss, r.final_loss, r.ratio());
        }
    }
    Ok(())
}
