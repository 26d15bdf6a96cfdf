//! GSPO training: data, rewards, the loss, the optimiser, the training loop, checkpoints and
//! evaluation. Nothing here prints; the `train`, `eval` and `plot` commands format the results.
//!
//! Layout: `gspo.rs` (advantages and the GSPO/GRPO loss, TRL semantics), `data.rs` (JSONL
//! prompts, the model's chat template, seeded shuffling), `scoring.rs` (the reward of a
//! completion: built-in scores and the external scorer), `config.rs` (settings: file,
//! environment, flags), `optim.rs` (AdamW and schedules), `trainer.rs` (rollouts → loss →
//! update; `split.rs` runs a minibatch as two halves on two threads), `checkpoint.rs`
//! (resumable state), `eval.rs` (mean reward, accuracy and NLL of reference answers), `math.rs`
//! (GSM8K-style final numbers), `tensorboard.rs` (TensorBoard event files).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dataset;
pub mod eval;
pub mod gspo;
pub mod math;
pub mod optim;
pub mod scoring;
mod split;
pub mod tensorboard;
pub mod trainer;
