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

/// A tensor whose record is written and whose chunks are arriving.
struct OpenTensor {
    index: usize,
    /// Where its data length goes (patched on close).
    len_pos: u64,
    record: Vec<u8>,
    data_len: u64,
    /// Chunk headers and chunk digests, for the body digest.
    skel: Vec<u8>,
}

/// Writes tensor records and chunks in file order as finished chunks arrive.
struct TensorWriter<'a, 'b> {
    inputs: &'a [PackInput<'b>],
    sizes: &'a [u64],
    /// Next tensor whose record has not been written.
    next: usize,
    /// The tensor being written.
    open: Option<OpenTensor>,
    raw_done: u64,
    stored: u64,
}

impl TensorWriter<'_, '_> {
    fn record(&self, ti: usize) -> Vec<u8> {
        let t = &self.inputs[ti];
        let mut rec = Vec::with_capacity(4 + t.name.len() + 2 + 8 * t.shape.len());
        rec.extend_from_slice(&(t.name.len() as u32).to_le_bytes());
        rec.extend_from_slice(t.name.as_bytes());
        rec.push(t.dtype.code());
        rec.push(t.shape.len() as u8);
        for d in &t.shape {
            rec.extend_from_slice(&d.to_le_bytes());
        }
        rec
    }

    /// Closes the open tensor: patches its data length and feeds the body digest.
    fn close<W: Write + Seek>(
        &mut self,
        o: &mut Out<'_, W>,
        top: &mut Sha3_256,
    ) -> Result<(), PackError> {
        if let Some(t) = self.open.take() {
            o.patch(t.len_pos, &t.data_len.to_le_bytes())?;
            top.update(&t.record);
            top.update(t.data_len.to_le_bytes());
            top.update(&t.skel);
        }
        Ok(())
    }

    /// Opens tensor `ti`, first writing and closing every tensor before it (empty tensors
    /// have no chunks, so they are written here).
    fn open_through<W: Write + Seek>(
        &mut self,
        o: &mut Out<'_, W>,
        top: &mut Sha3_256,
        ti: usize,
    ) -> Result<(), PackError> {
        while self.next <= ti {
            self.close(o, top)?;
            let idx = self.next;
            let rec = self.record(idx);
            o.put(&rec)?;
            let len_pos = o.pos;
            o.put(&0u64.to_le_bytes())?;
            self.open = Some(OpenTensor {
                index: idx,
                len_pos,
                record: rec,
                data_len: 0,
                skel: Vec::new(),
            });
            self.next += 1;
        }
        Ok(())
    }

    /// After the last chunk: writes any remaining (empty) tensors and closes the last one.
    fn finish<W: Write + Seek>(
        &mut self,
        o: &mut Out<'_, W>,
        top: &mut Sha3_256,
    ) -> Result<(), PackError> {
        if let Some(last) = self.inputs.len().checked_sub(1) {
            self.open_through(o, top, last)?;
        }
        self.close(o, top)
    }

    fn write<W: Write + Seek>(
        &mut self,
        o: &mut Out<'_, W>,
        top: &mut Sha3_256,
        jobs: &[Job],
        done: Vec<Done>,
    ) -> Result<(), PackError> {
        for (job, d) in jobs.iter().zip(done) {
            self.open_through(o, top, job.tensor)?;
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&d.raw_len.to_le_bytes());
            h[4..].copy_from_slice(&(d.stored.len() as u32).to_le_bytes());
            o.put(&h)?;
            o.put(&d.stored)?;
            let open = self.open.as_mut().expect("a tensor is open");
            debug_assert_eq!(open.index, job.tensor);
            open.data_len += 8 + d.stored.len() as u64;
            open.skel.extend_from_slice(&h);
            open.skel.extend_from_slice(&d.digest);
            self.raw_done += d.raw_len as u64;
            self.stored += d.stored.len() as u64;
            debug_assert!(self.sizes[job.tensor] >= job.offset_in_tensor + job.len as u64);
        }
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

/// Reads and compresses one chunk (hashing happens per group, see [`run_group`]).
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
        Compression::Lz4 => compress(slice),
    };
    Ok(Done {
        raw_len: job.len,
        stored,
        digest: [0; 32],
    })
}

/// LZ4 block of `data`, or `data` itself when LZ4 would not make it smaller (required by the
/// spec). Chunks whose first 64 KiB do not compress by at least 1/32 are stored raw without
/// trying the rest (allowed: a writer may store any chunk raw), which keeps packing of
/// high-entropy weights at memory speed.
fn compress(data: &[u8]) -> Vec<u8> {
    const PROBE: usize = 64 << 10;
    if data.len() > 2 * PROBE {
        let probe = lz4_flex::block::compress(&data[..PROBE]);
        if probe.len() > PROBE - PROBE / 32 {
            return data.to_vec();
        }
    }
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(data.len())];
    match lz4_flex::block::compress_into(data, &mut out) {
        Ok(n) if n < data.len() => {
            out.truncate(n);
            out
        }
        _ => data.to_vec(),
    }
}

/// Compresses a group of jobs and hashes their stored bytes together (multi-buffer SHA3).
fn run_group(
    inputs: &[PackInput<'_>],
    jobs: &[Job],
    compression: Compression,
    raw: &mut Vec<u8>,
) -> Result<Vec<Done>, PackError> {
    let mut done = jobs
        .iter()
        .map(|j| run_job(inputs, j, compression, raw))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u8]> = done.iter().map(|d| d.stored.as_slice()).collect();
    let digests = crate::core::hash::multi::sha3_256_many(&refs);
    for (d, h) in done.iter_mut().zip(digests) {
        d.digest = h;
    }
    Ok(done)
}

/// The chunk size checked and the metadata as JSON (the signer's worker id filled in when
/// empty), within the size limit.
fn checked_metadata(opts: &PackOptions<'_>) -> Result<Vec<u8>, PackError> {
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
    Ok(meta_json)
}

/// All chunks of all tensors, in file order: windows span tensor boundaries, so many small
/// tensors are packed as much in parallel as one large one.
fn chunk_jobs(sizes: &[u64], cs: u32) -> Vec<Job> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(ti, &size)| {
            (0..size.div_ceil(cs as u64)).map(move |k| {
                let off = k * cs as u64;
                Job {
                    tensor: ti,
                    offset_in_tensor: off,
                    len: (size - off).min(cs as u64) as u32,
                }
            })
        })
        .collect()
}

/// The signature section of a file whose digest is `digest`: Ed25519, and ML-DSA-87 for a
/// hybrid identity.
fn signature_block(id: &Identity, digest: &[u8; 32]) -> Result<SignatureBlock, PackError> {
    let public = id.public();
    let ed_pk = *public.ed25519.as_bytes();
    let pq_pk = public.ml_dsa_bytes();
    let msg = signing_message(digest, &ed_pk, pq_pk.as_deref());
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
    Ok(block)
}

/// The 24-byte header with its checksum still zero (it is written last).
fn header_of(compression: Compression, signed: bool, hybrid: bool) -> [u8; HEADER_LEN] {
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
    header[6] = compression.code();
    header[7] = flags;
    header
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
    let meta_json = checked_metadata(opts)?;

    let signed = opts.identity.is_some();
    let hybrid = opts.identity.map(|i| i.is_hybrid()).unwrap_or(false);
    let mut header = header_of(opts.compression, signed, hybrid);

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

    let lanes = crate::core::hash::multi::lanes().max(1);
    let window = rayon::current_num_threads().max(1) * lanes * 2;
    // All chunks of all tensors, in file order: windows span tensor boundaries, so many small
    // tensors are packed as much in parallel as one large one.
    let jobs = chunk_jobs(&sizes, cs);
    let mut tw = TensorWriter {
        inputs,
        sizes: &sizes,
        next: 0,
        open: None,
        raw_done: 0,
        stored: 0,
    };
    // Compress window k+1 while window k is written.
    let mut pending: Option<(usize, Vec<Done>)> = None;
    let mut offset = 0usize;
    loop {
        let next: Option<(usize, &[Job])> = if offset < jobs.len() {
            let end = (offset + window).min(jobs.len());
            let r = Some((offset, &jobs[offset..end]));
            offset = end;
            r
        } else {
            None
        };
        let compute = || -> Option<Result<(usize, Vec<Done>), PackError>> {
            next.map(|(first, b)| {
                let groups = b
                    .par_chunks(lanes)
                    .map_init(Vec::new, |raw, g| {
                        run_group(inputs, g, opts.compression, raw)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((first, groups.into_iter().flatten().collect()))
            })
        };
        let (wres, cres) = match pending.take() {
            Some((first, done)) => {
                let (o, tw, top, jobs) = (&mut o, &mut tw, &mut top, &jobs);
                let (a, b) = rayon::join(
                    move || tw.write(o, top, &jobs[first..first + done.len()], done),
                    compute,
                );
                (Some(a), b)
            }
            None => (None, compute()),
        };
        if let Some(r) = wres {
            r?;
            progress(tw.raw_done);
        }
        match cres {
            Some(r) => pending = Some(r?),
            None => break,
        }
    }
    tw.finish(&mut o, &mut top)?;
    let stored_total = tw.stored;

    let digest: [u8; 32] = top.finalize().into();
    if let Some(id) = opts.identity {
        o.put(&signature_block(id, &digest)?.encode())?;
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
