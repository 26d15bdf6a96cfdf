//! Verified decoding straight into buffers the caller owns (numpy arrays, a mapped file, …):
//! every chunk is read, hashed and decoded by a worker thread directly into its place in its
//! tensor's buffer, so the data is read once and copied once, and memory beyond the
//! destinations stays bounded by a few compressed chunks per thread.

use std::ops::Range;

use rayon::prelude::*;

use super::read::{ChunkOutcome, decode_compressed, finish, groups, read_stored};
use super::{ChunkRef, Delta, DeltaError, Source, VerifyOptions, VerifyReport};

/// Checks everything [`super::verify`] checks while decoding every tensor of `delta` (from
/// [`Delta::scan`] of the same `src`) into `dests`: one buffer per tensor, in the delta's
/// tensor order, each exactly the tensor's `raw_len` bytes long. On any error the buffers hold
/// unverified or partial data and must be discarded.
pub fn decode_into(
    src: &dyn Source,
    delta: Delta,
    opts: &VerifyOptions,
    dests: &mut [&mut [u8]],
) -> Result<VerifyReport, DeltaError> {
    let per_chunk = chunk_destinations(&delta, dests)?;
    let lanes = crate::core::hash::multi::lanes().max(1);
    let mut rest = per_chunk.into_iter();
    let work: Vec<(Range<usize>, Vec<&mut [u8]>)> = groups(&delta.chunks, lanes)
        .into_iter()
        .map(|g| {
            let d = rest.by_ref().take(g.len()).collect();
            (g, d)
        })
        .collect();
    let results: Vec<Result<Vec<ChunkOutcome>, DeltaError>> = work
        .into_par_iter()
        .map_init(Vec::new, |scratch, (g, dsts)| {
            decode_group(src, &delta, &delta.chunks[g], dsts, scratch)
        })
        .collect();
    let mut digests = Vec::with_capacity(delta.chunks.len());
    let mut first_err = None;
    for outcomes in results {
        for (digest, err) in outcomes? {
            digests.push(digest);
            if first_err.is_none() {
                first_err = err;
            }
        }
    }
    finish(delta, &digests, first_err, opts)
}

/// Splits each tensor's buffer into its chunks' places, in chunk (file) order.
fn chunk_destinations<'a>(
    delta: &Delta,
    dests: &'a mut [&mut [u8]],
) -> Result<Vec<&'a mut [u8]>, DeltaError> {
    let mismatch = |what: String| DeltaError::Io {
        offset: 0,
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
    };
    if dests.len() != delta.tensors.len() {
        return Err(mismatch(format!(
            "{} destination buffers for {} tensors",
            dests.len(),
            delta.tensors.len()
        )));
    }
    let mut out = Vec::with_capacity(delta.chunks.len());
    for (t, d) in delta.tensors.iter().zip(dests.iter_mut()) {
        if d.len() as u64 != t.raw_len {
            return Err(mismatch(format!(
                "destination for tensor {:?} is {} bytes, the tensor {}",
                t.name,
                d.len(),
                t.raw_len
            )));
        }
        out.extend(d.chunks_mut(delta.chunk_size as usize));
    }
    if out.len() != delta.chunks.len() {
        return Err(mismatch(format!(
            "{} chunk places for {} chunks",
            out.len(),
            delta.chunks.len()
        )));
    }
    Ok(out)
}

/// Reads a group of chunks (raw ones straight into their places), hashes their stored bytes
/// together, then decompresses the compressed ones into their places.
fn decode_group(
    src: &dyn Source,
    delta: &Delta,
    group: &[ChunkRef],
    mut dsts: Vec<&mut [u8]>,
    scratch: &mut Vec<Vec<u8>>,
) -> Result<Vec<ChunkOutcome>, DeltaError> {
    scratch.resize_with(group.len().max(scratch.len()), Vec::new);
    for ((ch, dst), buf) in group.iter().zip(dsts.iter_mut()).zip(scratch.iter_mut()) {
        if ch.is_raw() {
            // A raw chunk's stored length is its raw length, which is its place's length.
            src.read_exact_at(ch.data_offset(), dst)
                .map_err(|source| DeltaError::Io {
                    offset: ch.data_offset(),
                    source,
                })?;
        } else {
            read_stored(src, ch, buf)?;
        }
    }
    let stored: Vec<&[u8]> = group
        .iter()
        .zip(&dsts)
        .zip(scratch.iter())
        .map(|((ch, dst), buf)| if ch.is_raw() { &**dst } else { buf.as_slice() })
        .collect();
    let digests = crate::core::hash::multi::sha3_256_many(&stored);
    drop(stored);
    let mut out = Vec::with_capacity(group.len());
    for (((ch, dst), buf), digest) in group.iter().zip(dsts).zip(scratch.iter()).zip(digests) {
        let err = if ch.is_raw() {
            None
        } else {
            decode_compressed(delta, ch, buf, dst)
        };
        out.push((digest, err));
    }
    Ok(out)
}
