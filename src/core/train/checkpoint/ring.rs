//! `gym train --ring`: what a member brings to each ring round and what it continues from.
//!
//! The ring averages *updates*: each member's factors minus the round's start (the last agreed
//! mean, or the shared initialisation before the first round), signed as
//! `deltas/update-<seq>.delta`. The ring's mean update is `deltas/ring-<seq>.delta` (what
//! `gym ring audit` checks against the update files), and every member continues from
//! `start + mean update`, written as `deltas/avg-<seq>.delta`: `f32(start + f32(mean))`
//! element by element, so it is byte-identical at every member and recomputable from the two
//! files. Averaging updates instead of factors gives the same mean in exact arithmetic; with
//! `quantize = BITS` it makes the quantization error relative to the round's update rather
//! than to the factors (LoRA A's initial magnitude dwarfs a round's change to it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::{Aggregated, DeltaWritten, RunDir, flat, io_err};
use crate::core::atomic;
use crate::core::delta::{self, Compression, Dtype, Metadata};
use crate::core::model::lora;
use crate::core::ring::io as rio;
use crate::core::ring::proto::Outcome;
use crate::core::train::trainer::{NamedTensor, Result, TrainError, Trainer, lora_tensors};

fn ring_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Ring(e.to_string())
}

/// `deltas/<kind>-<seq>.delta` of a run folder.
fn seq_path(dir: &Path, kind: &str, seq: u64) -> PathBuf {
    dir.join("deltas").join(format!("{kind}-{seq:06}.delta"))
}

/// Packs named f32 tensors as a DELTA file (signed when `identity` is given), replacing one of
/// the same name; returns the body digest (hex).
fn pack_f32(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: Metadata,
    identity: Option<&crate::core::keys::Identity>,
) -> Result<String> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, v, _)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let inputs: Vec<delta::PackInput> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, _, shape), b)| delta::PackInput {
            name: name.clone(),
            dtype: Dtype::F32,
            shape: shape.iter().map(|&d| d as u64).collect(),
            data: delta::TensorSource::Bytes(b),
        })
        .collect();
    let opts = delta::PackOptions {
        compression: Compression::Lz4,
        chunk_size: 1 << 20,
        metadata,
        identity,
    };
    let (bytes, summary) = delta::pack_to_vec(&inputs, &opts)
        .map_err(|e| TrainError::Invalid(format!("packing {}: {e}", path.display())))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    atomic::write_file(path, &bytes, true, None).map_err(TrainError::Output)?;
    Ok(hex::encode(summary.digest))
}

impl RunDir<'_> {
    /// Sets the ring this run averages with; the factors the model holds now are the first
    /// round's start (every member starts from the same initialisation).
    pub fn set_ring(&mut self, plan: Option<super::RingPlan>, t: &Trainer) -> Result<()> {
        self.ring_start = match &plan {
            Some(_) => flat(&lora_tensors(&t.model)?),
            None => Vec::new(),
        };
        self.ring = plan;
        Ok(())
    }

    /// Signs and writes the update since the round's start (the factors of delta `d` minus
    /// the start) as `deltas/update-<seq>.delta`.
    fn write_update(&self, t: &Trainer, d: &DeltaWritten) -> Result<PathBuf> {
        let mut tensors = lora_tensors(&t.model)?;
        let mut k = 0;
        for (_, v, _) in tensors.iter_mut() {
            for x in v.iter_mut() {
                *x -= self.ring_start[k];
                k += 1;
            }
        }
        if k != self.ring_start.len() {
            return Err(TrainError::State(format!(
                "the ring start has {} values, the factors {k}",
                self.ring_start.len()
            )));
        }
        let mut meta = Metadata::new(self.identity.public().worker_id());
        meta.epoch = self
            .epoch
            .unwrap_or((t.step / t.cfg.aggregate_interval) as u64);
        meta.step = t.step as u64;
        meta.seq = d.seq;
        meta.base_hash = Some(self.base_hash.clone());
        meta.parent_hash = self.aggregated.last().map(|a| a.digest.clone());
        meta.config = Some(t.cfg.fingerprint());
        let ac = serde_json::to_value(&t.lora_cfg).expect("lora config serialises");
        meta.adapter_config = ac.as_object().cloned();
        let mut extra = serde_json::Map::new();
        extra.insert(
            "producer".into(),
            "gym train (update since the last agreed mean)".into(),
        );
        extra.insert("delta".into(), d.digest.clone().into());
        meta.extra = Some(extra);
        let path = seq_path(&self.dir, "update", d.seq);
        pack_f32(&path, &tensors, meta, Some(self.identity))?;
        Ok(path)
    }

    /// Runs one ring all-reduce of the update since the round's start, writes the ring's mean
    /// update and the factors continued from (`avg-<seq>.delta`, byte-identical at every
    /// member), and continues from them.
    pub(super) fn aggregate(
        &mut self,
        t: &Trainer,
        d: &DeltaWritten,
        weight: u64,
    ) -> Result<Aggregated> {
        use crate::core::ring::net;
        let update = self.write_update(t, d)?;
        let plan = self.ring.as_ref().expect("ring plan");
        let round = plan.spec.round + d.seq;
        // The ring file's settings (input bounds, quantization) hold in every round.
        let spec = std::sync::Arc::new(plan.spec.for_round(round));
        let (input, layout) = rio::load_input(&update, weight.max(1)).map_err(ring_err)?;
        let joined = net::join_blocking(
            spec.clone(),
            plan.me,
            plan.identity.clone(),
            std::sync::Arc::new(input),
            plan.opts,
            plan.progress.clone(),
        )
        .map_err(|e| ring_err(format!("ring round {round}: {e}")))?;
        let o = joined.outcome;
        let ring_path = seq_path(&self.dir, "ring", d.seq);
        let mean = rio::write_output(&ring_path, true, &spec, &layout, &o).map_err(ring_err)?;
        self.keep_forward_receipt(t, round, &spec, &o, joined.reduced)?;
        let factors = self.continue_from_mean(t, &layout, &o)?;
        let mut meta = rio::output_metadata(&spec, &layout, &o);
        let extra = meta.extra.get_or_insert_with(Default::default);
        extra.insert("update".into(), hex::encode(mean.digest).into());
        let path = seq_path(&self.dir, "avg", d.seq);
        let digest = pack_f32(&path, &factors, meta, None)?;
        Ok(Aggregated {
            path,
            round,
            members: o.members.len(),
            digest,
        })
    }

    /// Sets the model to `start + mean update` (each element `f32(start + f32(mean))`), makes
    /// it the next round's start, and returns the factors.
    fn continue_from_mean(
        &mut self,
        t: &Trainer,
        layout: &rio::Layout,
        o: &Outcome,
    ) -> Result<Vec<NamedTensor>> {
        let dev = t.model.device().clone();
        let vars: HashMap<String, candle_core::Var> =
            lora::trainable(&t.model).into_iter().collect();
        let mut k = 0usize;
        let mut out = Vec::with_capacity(layout.tensors.len());
        for (name, _, shape) in &layout.tensors {
            let n = shape.iter().product::<u64>() as usize;
            let vals: Vec<f32> = (k..k + n)
                .map(|i| (self.ring_start[i] as f64 + o.mean(i) as f32 as f64) as f32)
                .collect();
            self.ring_start[k..k + n].copy_from_slice(&vals);
            k += n;
            let v = vars.get(name).ok_or_else(|| {
                TrainError::State(format!(
                    "the ring result has a tensor {name} the model lacks"
                ))
            })?;
            let dims: Vec<usize> = shape.iter().map(|&x| x as usize).collect();
            v.set(&Tensor::from_slice(&vals, dims.as_slice(), &dev)?)?;
            out.push((name.clone(), vals, dims));
        }
        Ok(out)
    }

    /// Keeps the forward receipt this member issued for the round (`receipts/`).
    fn keep_forward_receipt(
        &self,
        t: &Trainer,
        round: u64,
        spec: &crate::core::ring::config::RingSpec,
        o: &Outcome,
        reduced: std::time::Duration,
    ) -> Result<()> {
        let plan = self.ring.as_ref().expect("ring plan");
        let epoch = self
            .epoch
            .unwrap_or((t.step / t.cfg.aggregate_interval) as u64);
        let Some(r) = crate::core::reward::records::issue_forward(
            epoch,
            round,
            spec,
            &o.members,
            plan.me,
            reduced,
            &plan.identity,
        ) else {
            return Ok(());
        };
        let p = self
            .dir
            .join("receipts")
            .join(format!("forward-r{round:06}.json"));
        std::fs::create_dir_all(self.dir.join("receipts")).map_err(io_err(&p))?;
        let text = serde_json::to_string_pretty(&r).expect("a receipt serialises") + "\n";
        atomic::write_file(&p, text.as_bytes(), true, None).map_err(TrainError::Output)?;
        Ok(())
    }
}
