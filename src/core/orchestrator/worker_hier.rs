//! `gym work` in a hierarchical round (docs/orchestrator.md "Scale: hierarchical rounds"):
//! the group ring writes the group's exact sum; a leader takes it into its leader ring(s); the
//! top leader ring writes the mean, which its members upload and report; every other member
//! takes that result from the orchestrator's store by content address and reports it.

use std::path::Path;
use std::sync::Arc;

use super::{Trained, WorkError, WorkEvent, Worker, accepted_or_duplicate, load_aggregate};
use crate::core::delta::{self, VerifyOptions};
use crate::core::orchestrator::OrchError;
use crate::core::orchestrator::server::{RingAssignment, WorkerView};
use crate::core::ring::config::{Output, RingSpec};
use crate::core::ring::io::{self as rio, Layout};
use crate::core::ring::net;
use crate::core::ring::proto::{Input, Outcome};
use crate::core::ring::sumfile::SumFile;
use crate::core::train::trainer::{TrainError, Trainer};

fn ring_err(e: impl std::fmt::Display) -> WorkError {
    WorkError::Train(TrainError::Ring(e.to_string()))
}

impl Worker<'_> {
    /// The group ring with this round's delta, then each leader ring this worker sits in with
    /// the sum of the ring below; the top ring's mean is reported, else the worker waits for
    /// the round's result ([`Self::adopt_final`]).
    pub(super) fn hier_round(
        &mut self,
        t: &Trainer,
        v: &WorkerView,
        a: &RingAssignment,
        group: Arc<RingSpec>,
        mine: Trained,
    ) -> Result<(), WorkError> {
        let (input, layout) =
            rio::load_input(&mine.delta.path, a.weight.unwrap_or(mine.weight)).map_err(ring_err)?;
        let Some(j) = self.join_ring(v.round, group.clone(), a.index, input)? else {
            return Ok(());
        };
        self.group_receipt = self.keep_receipt(v, &group, a.index, &j)?;
        let o = j.outcome;
        let dir = self.opts.output.join("deltas");
        let mut path = dir.join(format!("sum-{:06}-group.gymsum", group.round));
        SumFile::of_outcome(&group, &layout, &o)
            .write(&path, true)
            .map_err(ring_err)?;
        for (k, l) in a.leaders.iter().enumerate() {
            let spec = RingSpec::parse(&l.toml, Path::new("<leader ring from the orchestrator>"))
                .map_err(|e| OrchError::Object(e.to_string()))?;
            let spec = Arc::new(spec);
            let (input, layout) = SumFile::read(&path)
                .and_then(|s| s.into_input(&path))
                .map_err(ring_err)?;
            let Some(o) = self.join_ring(v.round, spec.clone(), l.index, input)? else {
                return Ok(());
            };
            let o = o.outcome;
            if spec.hier.output == Output::Mean {
                return self.report_mean(t, v, &spec, &layout, &o);
            }
            path = dir.join(format!("sum-{:06}-leader{k}.gymsum", spec.round));
            SumFile::of_outcome(&spec, &layout, &o)
                .write(&path, true)
                .map_err(ring_err)?;
        }
        self.pending_final = Some(v.round);
        Ok(())
    }

    /// One ring; a ring that fails is reported as an event and gives `None` (the round
    /// times out and is trained again).
    fn join_ring(
        &self,
        round: u64,
        spec: Arc<RingSpec>,
        index: usize,
        input: Input,
    ) -> Result<Option<net::Joined>, WorkError> {
        let opts = net::JoinOptions {
            step_timeout: self.opts.ring_timeout,
            connect_timeout: self.opts.ring_timeout,
            listen: None,
        };
        let joined = net::join_blocking(
            spec,
            index,
            self.opts.key.clone(),
            Arc::new(input),
            opts,
            Arc::new(|_| {}),
        );
        match joined {
            Ok(j) => Ok(Some(j)),
            Err(e) => {
                (self.on_event)(WorkEvent::RingFailed {
                    round,
                    error: e.to_string(),
                });
                Ok(None)
            }
        }
    }

    /// The top leader ring's mean: written, loaded, uploaded and reported.
    fn report_mean(
        &mut self,
        t: &Trainer,
        v: &WorkerView,
        spec: &RingSpec,
        layout: &Layout,
        o: &Outcome,
    ) -> Result<(), WorkError> {
        let path = self
            .opts
            .output
            .join("deltas")
            .join(format!("avg-{:06}.delta", spec.round));
        rio::write_output(&path, true, spec, layout, o).map_err(ring_err)?;
        let bytes =
            std::fs::read(&path).map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))?;
        self.take_result(t, v, bytes, o.members.len())
    }

    /// Not in the top ring: once a top-ring member reported the round's result, take it from
    /// the store by content address (a ring result of this round's rings) and report it.
    pub(super) fn adopt_final(
        &mut self,
        t: &Trainer,
        v: &WorkerView,
        a: &RingAssignment,
    ) -> Result<(), WorkError> {
        let Some(object) = &a.final_result else {
            return Ok(()); // not yet: the next view change brings it
        };
        let bytes = self.client.get_object(object)?;
        let report = delta::read_bytes(&bytes, &VerifyOptions::default())
            .map_err(|e| OrchError::Object(format!("round result {object}: {e}")))?;
        let ring = report
            .delta
            .metadata
            .extra
            .as_ref()
            .and_then(|e| e.get("ring"))
            .cloned()
            .unwrap_or_default();
        let group = RingSpec::parse(&a.toml, Path::new("<ring from the orchestrator>"))
            .map_err(|e| OrchError::Object(e.to_string()))?;
        // A ring result of this round's rings: the same ring round and fixed scale.
        if ring["round"].as_u64() != Some(group.round)
            || ring["fixed_scale_bits"].as_u64() != group.hier.scale_bits.map(u64::from)
        {
            return Err(OrchError::Object(format!(
                "round result {object} is not a ring result of this round's rings"
            ))
            .into());
        }
        let members = ring["members"].as_array().map_or(0, |m| m.len());
        self.take_result(t, v, bytes, members)
    }

    /// Loads the result as the aggregate, uploads it (content-addressed: the same object for
    /// every member) and reports it.
    fn take_result(
        &mut self,
        t: &Trainer,
        v: &WorkerView,
        bytes: Vec<u8>,
        members: usize,
    ) -> Result<(), WorkError> {
        load_aggregate(t, &bytes)?;
        let object = self.client.put_object(&self.opts.key, bytes)?;
        let receipt = self.group_receipt.take();
        let sent = self.send_result(v.round, &object, receipt);
        accepted_or_duplicate(sent)?;
        self.pending_final = None;
        self.loaded = Some(object.clone());
        self.rings += 1;
        (self.on_event)(WorkEvent::Ring {
            round: v.round,
            members,
            result: object,
        });
        Ok(())
    }
}
