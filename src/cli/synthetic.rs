//! `singlora synthetic`: LoRA and SingLoRA fitted to PSD, NSD and asymmetric shifts of one layer (THEORY §6.1).

use clap::Args;

use crate::error::Result;
use crate::studies::synthetic::{synthetic_table, SyntheticConfig};

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SyntheticArgs {
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

pub fn run(a: SyntheticArgs) -> Result<()> {
    let cfg = SyntheticConfig {
        width: a.width,
        rank: a.rank,
        steps: a.steps,
        lr: a.lr,
        seed: a.seed,
        ..Default::default()
    };
    print!("{}", synthetic_table(&cfg)?);
    Ok(())
}
