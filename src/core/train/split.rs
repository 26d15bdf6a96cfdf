//! Split minibatches: two halves of a minibatch run forward and backward on two threads (small
//! models leave the second core idle inside candle's ops). The loss sees the halves' log-probs
//! as leaves; their gradients are then carried through each half's graph in parallel — the
//! same chain rule as one piece — and merged into the loss's gradient store.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::trainer::{Result, Rollout, Trainer};
use crate::core::model::decoder::Checkpoint;
use crate::core::model::{Qwen3, Role};

/// One half of a split minibatch: its log-probs with their graph, the leaf the loss used in
/// their place, and that leaf padded to the minibatch's width.
pub(super) struct Half {
    logp: Tensor,
    leaf: Var,
    padded: Tensor,
    /// With gradient checkpointing: what carries the gradient through the layers.
    checkpoint: Option<Checkpoint>,
}

impl Half {
    /// Carries the loss's gradient at the leaf through this half's graph (and its layers, when
    /// checkpointed).
    fn backward(self, model: &Qwen3, grads: &GradStore) -> Result<Option<GradStore>> {
        let Some(g) = grads.get(self.leaf.as_tensor()) else {
            return Ok(None);
        };
        let mut out = (&self.logp * g.detach())?.sum_all()?.backward()?;
        if let Some(checkpoint) = self.checkpoint {
            model.backward_checkpointed(checkpoint, &mut out)?;
        }
        Ok(Some(out))
    }
}

/// Whether a minibatch of `rows` rows is split in two halves run on two threads: with at least
/// two threads, two rows, and no active LoRA dropout (whose generators are shared by the halves,
/// so the draws would depend on thread timing).
pub(super) fn should_split(trainer: &Trainer, rows: usize) -> bool {
    rayon::current_num_threads() >= 2
        && trainer.cfg.lora_dropout <= 0.0
        && trainer.model.device().is_cpu()
        && rows >= 2
}

/// The differentiable log-probs of the completions `rows`, and a leaf standing for them
/// zero-padded to `width` columns (what the loss sees).
fn half_logp(trainer: &Trainer, rollout: &Rollout, rows: &[usize], width: usize) -> Result<Half> {
    let mb = trainer.batch(rollout, rows)?;
    let (logp, checkpoint) = trainer.logp(&mb, Role::Policy)?;
    let leaf = Var::from_tensor(&logp.detach())?;
    let padded = leaf.as_tensor().pad_with_zeros(1, 0, width - mb.c)?;
    Ok(Half {
        logp,
        leaf,
        padded,
        checkpoint,
    })
}

/// Runs the two halves of `rows` forward on two threads; returns the log-probs the loss sees
/// (the halves' leaves, stacked and padded to `width` columns) and the halves themselves.
pub(super) fn forward(
    trainer: &Trainer,
    rollout: &Rollout,
    rows: &[usize],
    width: usize,
) -> Result<(Tensor, [Half; 2])> {
    let (first, second) = rows.split_at(rows.len() / 2);
    let (h0, h1) = rayon::join(
        || half_logp(trainer, rollout, first, width),
        || half_logp(trainer, rollout, second, width),
    );
    let (h0, h1) = (h0?, h1?);
    let logp = Tensor::cat(&[&h0.padded, &h1.padded], 0)?;
    Ok((logp, [h0, h1]))
}

/// Carries the loss's gradients at the halves' leaves through both halves on two threads and
/// adds what each gives a trainable variable into `grads`.
pub(super) fn backward(
    model: &Qwen3,
    halves: [Half; 2],
    vars: &[Var],
    grads: &mut GradStore,
) -> Result<()> {
    let [h0, h1] = halves;
    let (g0, g1) = rayon::join(|| h0.backward(model, grads), || h1.backward(model, grads));
    let (g0, g1) = (g0?, g1?);
    for var in vars {
        let t = var.as_tensor();
        let sum = match (
            g0.as_ref().and_then(|g| g.get(t)),
            g1.as_ref().and_then(|g| g.get(t)),
        ) {
            (Some(a), Some(b)) => Some((a + b)?),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        if let Some(d) = sum {
            grads.insert(t, d);
        }
    }
    Ok(())
}
