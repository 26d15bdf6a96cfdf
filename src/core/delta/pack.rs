//! Writing DELTA files: chunks are read, compressed and hashed in parallel windows while the
//! previous window is written, so packing uses every core in bounded memory.

use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};

use rayon::prelude::*;
use sha3::{Digest, Sha3_256};

use super::read::Source;
use super::sign::{SIGNATURE_CONTEXT, SignatureBlock, signing_message};
use super::*;
use crate::core::keys::Identity;

/// Where a tensor's raw little-endian bytes come from.
pub enum TensorSource<'a> {
    Bytes(&'a [u8]),
    /// `len` bytes at `offset` of `src`.
    At {
        src: &'a dyn Source,
        offset: u64,
    },
}

pub struct PackInput<'a> {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub data: TensorSource<'a>,
}

pub struct PackOptions<'a> {
    pub compression: Compression,
    pub chunk_size: u32,
    pub metadata: Metadata,
    pub identity: Option<&'a Identity>,
}

#[derive(Debug, Clone)]
pub struct PackSummary {
    pub tensors: usize,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub file_bytes: u64,
    pub digest: [u8; 32],
    pub signed: bool,
    pub hybrid: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("invalid input: {0}")]
    Invalid(DeltaError),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("reading tensor {name:?}: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error("writing output: {0}")]
    Write(std::io::Error),
}

impl crate::core::error::Classify for PackError {
    fn class(&self) -> crate::core::error::ErrorClass {
        use crate::core::error::ErrorClass;
        match self {
            PackError::Invalid(e) => e.class(),
            PackError::Metadata(_) => ErrorClass::Malformed,
            PackError::Read { .. } | PackError::Write(_) => ErrorClass::Io,
        }
    }
}

struct Job {
    tensor: usize,
    offset_in_tensor: u64,
    len: u32,
}

struct Done {
    raw_len: u32,
    stored: Vec<u8>,
    digest: [u8; 32],
}

/// The output stream and its position.
struct Out<'w, W: Write + Seek> {
    w: std::io::BufWriter<&'w mut W>,
    pos: u64,
}

impl<W: Write + Seek> Out<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.w.write_all(bytes).map_err(PackError::Write)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes finished chunks; appends their headers and digests to `skel`.
    /// Returns (bytes written, raw bytes covered).
    fn put_chunks(&mut self, done: Vec<Done>, skel: &mut Vec<u8>) -> Result<(u64, u64), PackError> {
        let (mut written, mut raw) = (0u64, 0u64);
        for d in done {
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&d.raw_len.to_le_bytes());
            h[4..].copy_from_slice(&(d.stored.len() as u32).to_le_bytes());
            self.put(&h)?;
            self.put(&d.stored)?;
            skel.extend_from_slice(&h);
            skel.extend_from_slice(&d.digest);
            written += 8 + d.stored.len() as u64;
            raw += d.raw_len as u64;
        }
        Ok((written, raw))
    }

    /// Overwrites bytes at `at` and returns to the end.
    fn patch(&mut self, at: u64, bytes: &[u8]) -> Result<(), PackError> {
        self.w.flush().map_err(PackError::Write)?;
        let inner = self.w.get_mut();
        inner.seek(SeekFrom::Start(at)).map_err(PackError::Write)?;
        inner.write_all(bytes).map_err(PackError::Write)?;
        inner
            .seek(SeekFrom::Start(self.pos))
            .map_err(PackError::Write)?;
        Ok(())
    }
}

/// Checks inputs against the same limits the reader enforces; returns each tensor's byte size.
fn validate(inputs: &[PackInput<'_>]) -> Result<Vec<u64>, PackError> {
    if inputs.len() as u64 > MAX_TENSORS as u64 {
        return Err(PackError::Invalid(DeltaError::TooManyTensors {
            offset: 0,
            count: inputs.len() as u32,
        }));
    }
    let mut seen = HashSet::new();
    let mut sizes = Vec::with_capacity(inputs.len());
    for (i, t) in inputs.iter().enumerate() {
        let index = i as u32;
        let len = t.name.len();
        if len == 0 || len > MAX_NAME_LEN as usize {
            return Err(PackError::Invalid(DeltaError::NameLength {
                index,
                offset: 0,
                len: len as u32,
                problem: if len == 0 {
                    "zero"
                } else {
                    "over the limit of 1024 bytes"
                },
            }));
        }
        if !seen.insert(t.name.as_str()) {
            return Err(PackError::Invalid(DeltaError::DuplicateName {
                name: t.name.clone(),
                offset: 0,
                first: 0,
            }));
        }
        if t.shape.len() > MAX_RANK as usize {
            return Err(PackError::Invalid(DeltaError::RankTooLarge {
                name: t.name.clone(),
                offset: 0,
                rank: t.shape.len() as u8,
            }));
        }
        let overflow = || {
            PackError::Invalid(DeltaError::ShapeOverflow {
                name: t.name.clone(),
                offset: 0,
                shape: t.shape.clone(),
            })
        };
        let elements = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(overflow)?;
        let bytes = t.dtype.byte_len(elements).ok_or_else(|| {
            PackError::Invalid(DeltaError::NotByteAligned {
                name: t.name.clone(),
                elements,
                dtype: t.dtype.name(),
            })
        })?;
        if bytes > MAX_TENSOR_BYTES {
            return Err(overflow());
        }
        if let TensorSource::Bytes(b) = &t.data
            && <[u8]>::len(b) as u64 != bytes
        {
            return Err(PackError::Invalid(DeltaError::DataLength {
                name: t.name.clone(),
                offset: 0,
                declared: bytes,
                actual: <[u8]>::len(b) as u64,
            }));
        }
        sizes.push(bytes);
    }
    Ok(sizes)
}

fn run_job(
    inputs: &[PackInput<'_>],
    job: &Job,
    compression: Compression,
    raw: &mut Vec<u8>,
) -> Result<Done, PackError> {
    let t = &inputs[job.tensor];
    let slice: &[u8] = match &t.data {
        TensorSource::Bytes(b) => {
            &b[job.offset_in_tensor as usize..job.offset_in_tensor as usize + job.len as usize]
        }
        TensorSource::At { src, offset } => {
            raw.resize(job.len as usize, 0);
            src.read_exact_at(offset + job.offset_in_tensor, raw)
                .map_err(|source| PackError::Read {
                    name: t.name.clone(),
                    source,
                })?;
            raw
        }
    };
    let stored = match compression {
        Compression::None => slice.to_vec(),
        Compression::Lz4 => {
            let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(slice.len())];
            let n = lz4_flex::block::compress_into(slice, &mut out).unwrap_or(usize::MAX);
            // The spec requires raw storage when LZ4 does not make the chunk smaller.
            if n < slice.len() {
                out.truncate(n);
                out
            } else {
                slice.to_vec()
            }
        }
    };
    let digest = crate::core::hash::sha3_256(&stored);
    Ok(Done {
        raw_len: job.len,
        stored,
        digest,
    })
}

/// Writes a delta to `out` (which must be positioned at its start and seekable: the header's
/// checksum is written last). `progress` receives the raw bytes processed so far.
pub fn pack<W: Write + Seek + Send>(
    inputs: &[PackInput<'_>],
    opts: &PackOptions<'_>,
    out: &mut W,
    progress: &dyn Fn(u64),
) -> Result<PackSummary, PackError> {
    let sizes = validate(inputs)?;
    let cs = opts.chunk_size;
    if !cs.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&cs) {
        return Err(PackError::Invalid(DeltaError::BadChunkSize {
            offset: 0,
            size: cs,
        }));
    }
    let mut meta = opts.metadata.clone();
    if let Some(id) = opts.identity
        && meta.worker_id.is_empty()
    {
        meta.worker_id = id.public().worker_id();
    }
    let meta_json = meta.to_json().map_err(PackError::Metadata)?;
    if meta_json.len() > MAX_METADATA_LEN as usize {
        return Err(PackError::Metadata(format!(
            "{} bytes of metadata exceed the limit of {MAX_METADATA_LEN}",
            meta_json.len()
        )));
    }

    let signed = opts.identity.is_some();
    let hybrid = opts.identity.map(|i| i.is_hybrid()).unwrap_or(false);
    let flags = if hybrid {
        FLAG_SIGNED | FLAG_HYBRID
    } else if signed {
        FLAG_SIGNED
    } else {
        0
    };
    let mut header = [0u8; HEADER_LEN];
    header[..5].copy_from_slice(&MAGIC);
    header[5] = VERSION;
    header[6] = opts.compression.code();
    header[7] = flags;

    // The digest input: header[0..8] then every body byte, chunk payloads replaced by digests.
    let mut top = Sha3_256::new();
    top.update(&header[..8]);
    let mut o = Out {
        w: std::io::BufWriter::with_capacity(1 << 20, out),
        pos: 0,
    };
    o.put(&header)?;
    for part in [
        &(meta_json.len() as u32).to_le_bytes()[..],
        &meta_json,
        &cs.to_le_bytes(),
        &(inputs.len() as u32).to_le_bytes(),
    ] {
        o.put(part)?;
        top.update(part);
    }

    let window = rayon::current_num_threads().max(1) * 4;
    let mut raw_done = 0u64;
    let mut stored_total = 0u64;
    for (ti, t) in inputs.iter().enumerate() {
        let size = sizes[ti];
        let mut rec = Vec::with_capacity(4 + t.name.len() + 2 + 8 * t.shape.len());
        rec.extend_from_slice(&(t.name.len() as u32).to_le_bytes());
        rec.extend_from_slice(t.name.as_bytes());
        rec.push(t.dtype.code());
        rec.push(t.shape.len() as u8);
        for d in &t.shape {
            rec.extend_from_slice(&d.to_le_bytes());
        }
        o.put(&rec)?;
        top.update(&rec);
        // The data length depends on the compressed sizes: write a placeholder, patch it after.
        let len_pos = o.pos;
        o.put(&0u64.to_le_bytes())?;
        let jobs: Vec<Job> = (0..size.div_ceil(cs as u64))
            .map(|k| {
                let off = k * cs as u64;
                Job {
                    tensor: ti,
                    offset_in_tensor: off,
                    len: (size - off).min(cs as u64) as u32,
                }
            })
            .collect();
        let mut data_len = 0u64;
        let mut skel: Vec<u8> = Vec::with_capacity(jobs.len() * 40);
        // Compress window k+1 while window k is written.
        let mut pending: Option<Vec<Done>> = None;
        let mut batches = jobs.chunks(window);
        loop {
            let next = batches.next();
            let compute = || -> Option<Result<Vec<Done>, PackError>> {
                next.map(|b| {
                    b.par_iter()
                        .map_init(Vec::new, |raw, j| run_job(inputs, j, opts.compression, raw))
                        .collect::<Result<Vec<_>, _>>()
                })
            };
            let (wres, cres) = match pending.take() {
                Some(done) => {
                    let (o, skel) = (&mut o, &mut skel);
                    let (a, b) = rayon::join(move || o.put_chunks(done, skel), compute);
                    (Some(a), b)
                }
                None => (None, compute()),
            };
            if let Some(r) = wres {
                let (written, raw) = r?;
                data_len += written;
                stored_total += written;
                raw_done += raw;
                progress(raw_done);
            }
            match cres {
                Some(r) => pending = Some(r?),
                None => break,
            }
        }
        stored_total -= 8 * jobs.len() as u64;
        o.patch(len_pos, &data_len.to_le_bytes())?;
        top.update(data_len.to_le_bytes());
        top.update(&skel);
    }

    let digest: [u8; 32] = top.finalize().into();
    if let Some(id) = opts.identity {
        let public = id.public();
        let ed_pk = *public.ed25519.as_bytes();
        let pq_pk = public.ml_dsa_bytes();
        let msg = signing_message(&digest, &ed_pk, pq_pk.as_deref());
        let ed_sig = id.sign_ed25519(&msg);
        let ml = match pq_pk {
            Some(pk) => {
                let sig = id
                    .sign_ml_dsa(&msg, SIGNATURE_CONTEXT)
                    .ok_or_else(|| PackError::Metadata("ML-DSA-87 signing failed".into()))?;
                Some((pk, sig))
            }
            None => None,
        };
        let block = SignatureBlock {
            ed25519_public: ed_pk,
            ed25519_signature: ed_sig,
            ml_dsa_87: ml,
        };
        o.put(&block.encode())?;
    }
    let file_bytes = o.pos;
    header[8..24].copy_from_slice(&digest[..16]);
    o.patch(0, &header)?;
    o.w.flush().map_err(PackError::Write)?;

    Ok(PackSummary {
        tensors: inputs.len(),
        raw_bytes: sizes.iter().sum(),
        stored_bytes: stored_total,
        file_bytes,
        digest,
        signed,
        hybrid,
    })
}

/// [`pack`] into memory.
pub fn pack_to_vec(
    inputs: &[PackInput<'_>],
    opts: &PackOptions<'_>,
) -> Result<(Vec<u8>, PackSummary), PackError> {
    let mut cur = std::io::Cursor::new(Vec::new());
    let s = pack(inputs, opts, &mut cur, &|_| {})?;
    Ok((cur.into_inner(), s))
}
