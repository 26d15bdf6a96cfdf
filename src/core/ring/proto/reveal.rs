//! The reveal phase: every member opens the nonce it committed to. All nonces together seed
//! the sketches, so nobody knows the sketch points before every partial sum is signed.

use super::sketch::Sketching;
use super::{Machine, Out, Refused, State, nonce_hash, seed};

impl Machine {
    pub(super) fn on_reveal(
        &mut self,
        from: usize,
        nonce: [u8; 32],
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        if self.transcript.reveals.contains_key(&from) {
            return Err(self.replay(from, "reveal"));
        }
        if !self.transcript.commits.contains_key(&from) {
            return Err(self.unexpected(from, "reveal before commit".into()));
        }
        if nonce_hash(&nonce) != self.transcript.commit(from).nonce_hash {
            return Err(self.unexpected(from, "nonce that does not match its commitment".into()));
        }
        self.transcript.reveals.insert(from, nonce);
        self.after_reveal(out);
        Ok(())
    }

    /// With every nonce in: derive the seed and publish our sketches.
    pub(super) fn after_reveal(&mut self, out: &mut Vec<Out>) {
        if !matches!(self.state, State::Reveal(_)) || self.transcript.reveals.len() < self.view.n()
        {
            return;
        }
        let State::Reveal(red) = std::mem::replace(&mut self.state, State::Finished) else {
            unreachable!("checked above")
        };
        let t = &self.transcript;
        let seed = seed(
            &self.member.rd,
            self.view.number,
            self.view
                .members
                .iter()
                .map(|j| (&t.commits[j], &t.reveals[j])),
        );
        let sketching = Sketching { red, seed };
        self.state = State::Sketch(sketching);
        self.publish_sketch(out);
    }
}
