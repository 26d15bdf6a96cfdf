//! Test-only misbehaviour, behind one seam: the machine hands every data payload it is about
//! to sign to [`Faults::tamper_data`]. Outside tests `Faults` is an empty type whose
//! `tamper_data` does nothing, so no production path branches on a fault.

use super::reduce::DataPhase;

/// Where a data payload is going (read by the test faults only).
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct DataSite {
    pub(super) view: u32,
    /// Members in the view.
    pub(super) members: usize,
    pub(super) phase: DataPhase,
    pub(super) step: usize,
}

/// What a test machine does wrong.
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {
    /// Add 1000 to the first element of every scatter message from step 1 on (step 0 in a
    /// ring of 2), in view 0.
    pub corrupt_partial_sums: bool,
}

#[cfg(test)]
impl Faults {
    /// Alters `payload` (little-endian `i64`s) as the faults ask, before it is hashed and signed.
    pub(super) fn tamper_data(&self, site: DataSite, payload: &mut [u8]) {
        let from_step = if site.members == 2 { 0 } else { 1 };
        if self.corrupt_partial_sums
            && site.view == 0
            && site.phase == DataPhase::Scatter
            && site.step >= from_step
            && !payload.is_empty()
        {
            let first = &mut payload[..8];
            let v = i64::from_le_bytes((&*first).try_into().expect("8 bytes")) + 1000;
            first.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// No faults outside tests.
#[cfg(not(test))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {}

#[cfg(not(test))]
impl Faults {
    #[inline(always)]
    pub(super) fn tamper_data(&self, _: DataSite, _: &mut [u8]) {}
}
