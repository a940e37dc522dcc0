//! `singlora layer`: one adapted layer and all its gradients, dumped to safetensors.

use std::path::PathBuf;

use clap::Args;

use super::args::AdapterArgs;
use crate::error::{Error, Result};
use crate::io::layer_dump::{dump_layer, DumpState, LayerDumpConfig};
use crate::io::write_atomic;
use crate::scalar::Precision;

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct LayerArgs {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Input dimension d_in.
    #[arg(long)]
    d_in: usize,
    /// Output dimension d_out.
    #[arg(long)]
    d_out: usize,
    /// Ramp value u in [0, 1] at which the layer is evaluated.
    #[arg(long, default_value_t = 1.0)]
    u: f64,
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

pub fn run(a: LayerArgs) -> Result<()> {
    let adapter = a.adapter.config(None)?;
    let method = adapter.method;
    let dtype: Precision = a
        .dtype
        .parse()
        .map_err(|_| Error::invalid("dtype", &a.dtype, "f32 or f64"))?;
    let cfg = LayerDumpConfig {
        adapter,
        d_in: a.d_in,
        d_out: a.d_out,
        batch: a.batch,
        u: a.u,
        state: a.state.parse::<DumpState>()?,
        seed: a.seed,
    };
    let bytes = match dtype {
        Precision::F64 => dump_layer::<f64>(&cfg)?,
        Precision::F32 => dump_layer::<f32>(&cfg)?,
    };
    write_atomic(&a.out, &bytes)?;
    println!(
        "wrote {} ({} bytes): {} layer {}x{}, rank {}, u = {}",
        a.out.display(),
        bytes.len(),
        method,
        a.d_out,
        a.d_in,
        cfg.adapter.rank,
        a.u
    );
    Ok(())
}
