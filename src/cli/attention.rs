//! `singlora attention`: can SingLoRA on q and k realise an asymmetric change of the attention scores W_Qᵀ W_K?
//! Full fine-tuning, LoRA and SingLoRA (r and 2r) fit a teacher whose score change is asymmetric, and one inside
//! SingLoRA's family (src/studies/attention.rs).

use clap::Args;

use crate::error::Result;
use crate::studies::attention::{attention_table, run_attention, AttentionConfig};

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct AttentionArgs {
    /// Width n: head size, model width and vocabulary.
    #[arg(long, default_value_t = AttentionConfig::default().width)]
    width: usize,
    /// Target rank r (LoRA and SingLoRA rank r; SingLoRA 2r is compared too).
    #[arg(long, default_value_t = AttentionConfig::default().rank)]
    rank: usize,
    /// Sequence length T.
    #[arg(long, default_value_t = AttentionConfig::default().seq_len)]
    seq_len: usize,
    /// Training sequences (as many are held out).
    #[arg(long, default_value_t = AttentionConfig::default().examples)]
    examples: usize,
    /// Adam steps (full batch).
    #[arg(long, default_value_t = AttentionConfig::default().steps)]
    steps: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = AttentionConfig::default().lr)]
    lr: f64,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = AttentionConfig::default().seeds)]
    seeds: Vec<u64>,
}

pub fn run(a: AttentionArgs) -> Result<()> {
    let cfg = AttentionConfig {
        width: a.width,
        rank: a.rank,
        seq_len: a.seq_len,
        examples: a.examples,
        steps: a.steps,
        lr: a.lr,
        seeds: a.seeds,
    };
    let fits = run_attention(&cfg)?;
    print!("{}", attention_table(&cfg, &fits));
    Ok(())
}
