//! The quantities a study records, fits and predicts: one type for probes, theory predictions, fits, reports and
//! figures. `Display` is the CSV spelling (`dz_rms`, `grad_fro.lora_B.weight`, …) and `FromStr` its inverse, so a
//! misspelt name is an error, never a silently empty column.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::adapters::{Role, Term};
use crate::error::{Error, Result};
use crate::names::serde_via_str;

/// A recorded (or predicted) quantity. Per-map quantities are recorded at a layer; model-level ones at layer `model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quantity {
    /// rms of the map's output $z$ (μP's coordinate size).
    ActRms,
    /// Mean absolute value of $z$.
    ActL1,
    /// rms of the per-step output change $z_t - z_{t-1}$.
    DzRms,
    /// Mean absolute value of $z_t - z_{t-1}$.
    DzL1,
    /// rms of the cumulative change $z_t - z_0$.
    DzCumRms,
    /// rms of the adapter's own contribution $c\,X\widetilde{\Delta W}^\top$.
    UpdateOutRms,
    /// rms of one term of the per-step decomposition (times c): `delta1_rms` … `T3_rms`.
    TermRms(Term),
    /// rms of the rank-r bottleneck $XA^\top$ (LoRA) or $XA_{in}$ (SingLoRA).
    BottleneckRms,
    /// $\lVert c\widetilde{\Delta W}\rVert_F$.
    DwFro,
    /// $\lVert c\widetilde{\Delta W}\rVert_{op}$.
    DwOp,
    /// Frobenius norm of the gradient of the layer's tensor of this role: `grad_fro.<tensor name>`.
    GradFro(Role),
    /// Frobenius norm of the layer's tensor of this role: `param_fro.<tensor name>`.
    ParamFro(Role),
    /// Training loss (layer `model`).
    Loss,
    /// Held-out loss (layer `model`).
    TestLoss,
    /// Held-out accuracy (layer `model`, classification).
    TestAcc,
    /// The step at which a run diverged (layer `model`; its value is the step).
    DivergedAt,
    /// SGD's balanced growth-rate exponent (a theory prediction, not a probe).
    Kappa,
    /// Transformer block: rms of the attention logits τ·QKᵀ over the entries the mask keeps.
    AttnLogitsRms,
    /// Transformer block: rms of the heads' outputs PV before W_O.
    AttnCtxRms,
    /// Transformer block: rms of the attention sublayer's output (after W_O).
    AttnOutRms,
    /// Transformer block: rms of the residual stream after attention.
    ResidMidRms,
    /// Transformer block: rms of the MLP sublayer's output.
    MlpOutRms,
    /// Transformer block: rms of the residual stream after the block.
    ResidOutRms,
}

impl Quantity {
    /// The quantities without a tensor or term, in the order probes record them.
    pub const PLAIN: [Quantity; 20] = [
        Quantity::ActRms,
        Quantity::ActL1,
        Quantity::DzRms,
        Quantity::DzL1,
        Quantity::DzCumRms,
        Quantity::UpdateOutRms,
        Quantity::BottleneckRms,
        Quantity::DwFro,
        Quantity::DwOp,
        Quantity::Loss,
        Quantity::TestLoss,
        Quantity::TestAcc,
        Quantity::DivergedAt,
        Quantity::Kappa,
        Quantity::AttnLogitsRms,
        Quantity::AttnCtxRms,
        Quantity::AttnOutRms,
        Quantity::ResidMidRms,
        Quantity::MlpOutRms,
        Quantity::ResidOutRms,
    ];

    /// A transformer block's activations (recorded at layer `block.K`), in forward order.
    pub const BLOCK: [Quantity; 6] = [
        Quantity::AttnLogitsRms,
        Quantity::AttnCtxRms,
        Quantity::AttnOutRms,
        Quantity::ResidMidRms,
        Quantity::MlpOutRms,
        Quantity::ResidOutRms,
    ];

    /// Every quantity, tensors and terms included.
    pub fn all() -> Vec<Quantity> {
        let mut v = Quantity::PLAIN.to_vec();
        v.extend(Term::ALL.map(Quantity::TermRms));
        v.extend(Role::ALL.map(Quantity::GradFro));
        v.extend(Role::ALL.map(Quantity::ParamFro));
        v
    }

    /// The spelling of a quantity without a tensor or term.
    fn plain_name(self) -> Option<&'static str> {
        Some(match self {
            Quantity::ActRms => "act_rms",
            Quantity::ActL1 => "act_l1",
            Quantity::DzRms => "dz_rms",
            Quantity::DzL1 => "dz_l1",
            Quantity::DzCumRms => "dz_cum_rms",
            Quantity::UpdateOutRms => "update_out_rms",
            Quantity::BottleneckRms => "bottleneck_rms",
            Quantity::DwFro => "dw_fro",
            Quantity::DwOp => "dw_op",
            Quantity::Loss => "loss",
            Quantity::TestLoss => "test_loss",
            Quantity::TestAcc => "test_acc",
            Quantity::DivergedAt => "diverged_at",
            Quantity::Kappa => "kappa",
            Quantity::AttnLogitsRms => "attn_logits_rms",
            Quantity::AttnCtxRms => "attn_ctx_rms",
            Quantity::AttnOutRms => "attn_out_rms",
            Quantity::ResidMidRms => "resid_mid_rms",
            Quantity::MlpOutRms => "mlp_out_rms",
            Quantity::ResidOutRms => "resid_out_rms",
            Quantity::TermRms(_) | Quantity::GradFro(_) | Quantity::ParamFro(_) => return None,
        })
    }

    /// The rms quantity of a transformer block activation named `name` (`attn_logits`, `resid_out`, …).
    pub fn of_activation(name: &str) -> Option<Quantity> {
        Some(match name {
            "attn_logits" => Quantity::AttnLogitsRms,
            "attn_ctx" => Quantity::AttnCtxRms,
            "attn_out" => Quantity::AttnOutRms,
            "resid_mid" => Quantity::ResidMidRms,
            "mlp_out" => Quantity::MlpOutRms,
            "resid_out" => Quantity::ResidOutRms,
            _ => return None,
        })
    }

    /// Whether `pattern` (a study's `probes` entry) selects this quantity: it is a prefix of the spelling.
    pub fn matches(self, pattern: &str) -> bool {
        self.to_string().starts_with(pattern)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::TermRms(t) => write!(f, "{}_rms", t.name()),
            Quantity::GradFro(r) => write!(f, "grad_fro.{}", r.tensor_name()),
            Quantity::ParamFro(r) => write!(f, "param_fro.{}", r.tensor_name()),
            q => f.write_str(q.plain_name().expect("plain quantity")),
        }
    }
}

impl FromStr for Quantity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Quantity::all()
            .into_iter()
            .find(|q| q.to_string() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "quantity",
                    s,
                    "a probe quantity such as dz_rms, update_out_rms, grad_fro.lora_B.weight (see src/probes)",
                )
            })
    }
}

serde_via_str!(Quantity);

/// Quantities sort by their spelling, the order of every table.
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.plain_name(), other.plain_name()) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => self.to_string().cmp(&other.to_string()),
        }
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
