//! Reading and checking DELTA files: a structural scan that reads only headers, then a parallel
//! pass over chunk payloads (hash, decompress, check sizes) in bounded memory.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;

use rayon::prelude::*;
use sha3::{Digest, Sha3_256};

use super::sign::{SIGNATURE_CONTEXT, SignatureBlock, signing_message};
use super::*;
use crate::core::keys::{self, PublicIdentity, TrustedKeys};

/// Random-access bytes: a file (positioned reads) or a slice.
pub trait Source: Sync {
    fn len(&self) -> u64;
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..end)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A file opened for reading, with its length taken once.
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    #[cfg(unix)]
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
    #[cfg(windows)]
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            let n = self.file.seek_read(buf, offset)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

/// One tensor record, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Offset of the record's first byte.
    pub offset: u64,
    /// Decompressed size in bytes.
    pub raw_len: u64,
    /// Sum of stored chunk payload sizes.
    pub stored_len: u64,
    /// Indices into [`Delta::chunks`].
    pub chunks: Range<usize>,
}

/// One chunk of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub tensor: u32,
    /// Index within its tensor.
    pub index: u64,
    /// Offset of the chunk's 8-byte length header.
    pub offset: u64,
    pub raw_len: u32,
    pub stored_len: u32,
}

impl ChunkRef {
    pub(super) fn data_offset(&self) -> u64 {
        self.offset + 8
    }
    pub fn is_raw(&self) -> bool {
        self.stored_len == self.raw_len
    }
}

/// The structure of a delta, read without touching tensor data. Nothing here has been checked
/// against the checksum or signature: use [`verify`] for that.
#[derive(Debug, Clone)]
pub struct Delta {
    pub version: u8,
    pub compression: Compression,
    pub flags: u8,
    pub checksum: [u8; 16],
    pub metadata: Metadata,
    pub metadata_len: u32,
    pub chunk_size: u32,
    pub tensors: Vec<TensorEntry>,
    pub chunks: Vec<ChunkRef>,
    pub signature: Option<SignatureBlock>,
    /// Offset where the signature section starts (= end of the tensor section).
    pub signature_offset: u64,
    pub file_len: u64,
    /// The body with each chunk payload replaced by its SHA3-256 (digest slots zeroed).
    skeleton: Vec<u8>,
    /// Where each chunk's digest goes in `skeleton`.
    slots: Vec<usize>,
}

/// A small buffered reader over a [`Source`] that knows what it is reading, for error messages.
struct Cursor<'a> {
    src: &'a dyn Source,
    pos: u64,
    len: u64,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), DeltaError> {
        if n > self.remaining() {
            return Err(DeltaError::Truncated {
                what: what(),
                offset: self.pos,
                need: n,
                have: self.remaining(),
            });
        }
        Ok(())
    }

    fn take(
        &mut self,
        n: u64,
        what: &dyn Fn() -> String,
        skel: &mut Vec<u8>,
    ) -> Result<Vec<u8>, DeltaError> {
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.src
            .read_exact_at(self.pos, &mut buf)
            .map_err(|source| DeltaError::Io {
                offset: self.pos,
                source,
            })?;
        self.pos += n;
        skel.extend_from_slice(&buf);
        Ok(buf)
    }

    fn u8(&mut self, what: &dyn Fn() -> String, skel: &mut Vec<u8>) -> Result<u8, DeltaError> {
        Ok(self.take(1, what, skel)?[0])
    }
    fn u32(&mut self, what: &dyn Fn() -> String, skel: &mut Vec<u8>) -> Result<u32, DeltaError> {
        let b = self.take(4, what, skel)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &dyn Fn() -> String, skel: &mut Vec<u8>) -> Result<u64, DeltaError> {
        let b = self.take(8, what, skel)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }
}

/// Reads the header only and checks magic, version, compression and flags.
pub fn read_header(h: &[u8]) -> Result<(u8, Compression, u8, [u8; 16]), DeltaError> {
    let magic = h.get(..5).unwrap_or(h);
    if magic != MAGIC {
        return Err(DeltaError::BadMagic {
            found: magic.to_vec(),
        });
    }
    if h.len() < HEADER_LEN {
        return Err(DeltaError::Truncated {
            what: "header".into(),
            offset: h.len() as u64,
            need: (HEADER_LEN - h.len()) as u64,
            have: 0,
        });
    }
    let version = h[5];
    if version != VERSION {
        return Err(DeltaError::UnsupportedVersion { version });
    }
    let compression =
        Compression::from_code(h[6]).ok_or(DeltaError::UnknownCompression { code: h[6] })?;
    let flags = h[7];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DeltaError::UnknownFlags {
            flags,
            bits: flags & !KNOWN_FLAGS,
        });
    }
    if flags & FLAG_HYBRID != 0 && flags & FLAG_SIGNED == 0 {
        return Err(DeltaError::HybridWithoutSigned { flags });
    }
    let mut checksum = [0u8; 16];
    checksum.copy_from_slice(&h[8..24]);
    Ok((version, compression, flags, checksum))
}

/// The tensor section as it is scanned: entries, names seen (for duplicates), chunk
/// references, and the skeleton slots where chunk digests go.
struct TensorTable {
    tensors: Vec<TensorEntry>,
    names: HashMap<String, u32>,
    chunks: Vec<ChunkRef>,
    slots: Vec<usize>,
}

impl TensorTable {
    /// Scans tensor `index`: its header (name, dtype, shape) and its chunks' extents.
    fn read_tensor(
        &mut self,
        c: &mut Cursor,
        skel: &mut Vec<u8>,
        index: u32,
        chunk_size: u32,
        compression: Compression,
    ) -> Result<(), DeltaError> {
        let offset = c.pos;
        let name = self.read_name(c, skel, index)?;
        let code = c.u8(&|| format!("tensor {name:?} dtype"), skel)?;
        let dtype = Dtype::from_code(code).ok_or_else(|| DeltaError::UnknownDtype {
            name: name.clone(),
            offset,
            code,
        })?;
        let rank = c.u8(&|| format!("tensor {name:?} rank"), skel)?;
        if rank > MAX_RANK {
            return Err(DeltaError::RankTooLarge { name, offset, rank });
        }
        let mut shape = Vec::with_capacity(rank as usize);
        for d in 0..rank {
            shape.push(c.u64(&|| format!("tensor {name:?} shape[{d}]"), skel)?);
        }
        let raw_len = match raw_len_of(dtype, &shape) {
            Ok(b) => b,
            Err(RawLenProblem::Overflow) => {
                return Err(DeltaError::ShapeOverflow {
                    name,
                    offset,
                    shape,
                });
            }
            Err(RawLenProblem::NotByteAligned(elements)) => {
                return Err(DeltaError::NotByteAligned {
                    name,
                    elements,
                    dtype: dtype.name(),
                });
            }
        };
        let data_len_offset = c.pos;
        let data_len = c.u64(&|| format!("tensor {name:?} data length"), skel)?;
        c.need(data_len, &|| format!("tensor {name:?} data"))?;
        let data = TensorData {
            tensor: self.tensors.len() as u32,
            raw_len,
            chunk_size,
            compression,
            data_start: c.pos,
            data_len,
            data_len_offset,
        };
        let first_chunk = self.chunks.len();
        let stored_total = self.read_chunks(c, skel, &name, &data)?;
        let consumed = c.pos - data.data_start;
        if consumed != data_len {
            return Err(DeltaError::DataLength {
                name,
                offset: data_len_offset,
                declared: data_len,
                actual: consumed,
            });
        }
        self.names.insert(name.clone(), index);
        self.tensors.push(TensorEntry {
            name,
            dtype,
            shape,
            offset,
            raw_len,
            stored_len: stored_total,
            chunks: first_chunk..self.chunks.len(),
        });
        Ok(())
    }

    /// A tensor's name: 1 to 1024 bytes of UTF-8, not seen before.
    fn read_name(
        &self,
        c: &mut Cursor,
        skel: &mut Vec<u8>,
        index: u32,
    ) -> Result<String, DeltaError> {
        let offset = c.pos;
        let name_len = c.u32(&|| format!("tensor #{index} name length"), skel)?;
        if name_len == 0 {
            return Err(DeltaError::NameLength {
                index,
                offset,
                len: 0,
                problem: "zero",
            });
        }
        if name_len > MAX_NAME_LEN {
            return Err(DeltaError::NameLength {
                index,
                offset,
                len: name_len,
                problem: "over the limit of 1024 bytes",
            });
        }
        let name_bytes = c.take(name_len as u64, &|| format!("tensor #{index} name"), skel)?;
        let name =
            String::from_utf8(name_bytes).map_err(|_| DeltaError::NameNotUtf8 { index, offset })?;
        if let Some(first) = self.names.get(&name) {
            return Err(DeltaError::DuplicateName {
                name,
                offset,
                first: *first,
            });
        }
        Ok(name)
    }

    /// Scans the chunks of one tensor's data (lengths checked, payloads skipped); returns
    /// their stored bytes.
    fn read_chunks(
        &mut self,
        c: &mut Cursor,
        skel: &mut Vec<u8>,
        name: &str,
        t: &TensorData,
    ) -> Result<u64, DeltaError> {
        let chunk_size = t.chunk_size as u64;
        let mut stored_total = 0u64;
        for k in 0..t.raw_len.div_ceil(chunk_size) {
            let ch_offset = c.pos;
            let expected_raw = (t.raw_len - k * chunk_size).min(chunk_size);
            let raw = c.u32(&|| format!("tensor {name:?} chunk {k} raw length"), skel)?;
            if raw as u64 != expected_raw {
                return Err(DeltaError::ChunkRawLength {
                    name: name.to_string(),
                    chunk: k,
                    offset: ch_offset,
                    raw,
                    expected: expected_raw,
                });
            }
            let stored = c.u32(&|| format!("tensor {name:?} chunk {k} stored length"), skel)?;
            let bad_stored = |problem: String| DeltaError::ChunkStoredLength {
                name: name.to_string(),
                chunk: k,
                offset: ch_offset,
                stored,
                problem,
            };
            if stored > raw {
                return Err(bad_stored(format!("exceeds its raw length {raw}")));
            }
            if t.compression == Compression::None && stored != raw {
                return Err(bad_stored(format!(
                    "differs from raw length {raw} in an uncompressed file"
                )));
            }
            if stored == 0 {
                return Err(bad_stored("is zero".into()));
            }
            c.need(stored as u64, &|| format!("tensor {name:?} chunk {k} data"))?;
            let consumed = c.pos + stored as u64 - t.data_start;
            if consumed > t.data_len {
                return Err(DeltaError::DataLength {
                    name: name.to_string(),
                    offset: t.data_len_offset,
                    declared: t.data_len,
                    actual: consumed,
                });
            }
            self.chunks.push(ChunkRef {
                tensor: t.tensor,
                index: k,
                offset: ch_offset,
                raw_len: raw,
                stored_len: stored,
            });
            c.pos += stored as u64;
            self.slots.push(skel.len());
            skel.extend_from_slice(&[0u8; 32]);
            stored_total += stored as u64;
        }
        Ok(stored_total)
    }
}

/// What [`TensorTable::read_chunks`] needs to know of a tensor's data section.
struct TensorData {
    tensor: u32,
    raw_len: u64,
    chunk_size: u32,
    compression: Compression,
    data_start: u64,
    data_len: u64,
    data_len_offset: u64,
}

/// Why a shape has no valid byte length.
enum RawLenProblem {
    /// The element count or byte length overflows, or exceeds the tensor size limit.
    Overflow,
    /// The elements (this many) do not fill whole bytes.
    NotByteAligned(u64),
}

/// The byte length of a tensor of `dtype` and `shape`, within the tensor size limit.
fn raw_len_of(dtype: Dtype, shape: &[u64]) -> Result<u64, RawLenProblem> {
    let e = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or(RawLenProblem::Overflow)?;
    match dtype.byte_len(e) {
        Some(b) if b <= MAX_TENSOR_BYTES => Ok(b),
        Some(_) => Err(RawLenProblem::Overflow),
        None if e.checked_mul(dtype.bits()).is_some() => Err(RawLenProblem::NotByteAligned(e)),
        None => Err(RawLenProblem::Overflow),
    }
}

/// The signature section: an Ed25519 public key and signature, then with `hybrid` an
/// ML-DSA-87 public key and signature.
fn read_signature(c: &mut Cursor, hybrid: bool) -> Result<SignatureBlock, DeltaError> {
    let mut scratch = Vec::new();
    let what = |part: &'static str| move || format!("signature section ({part})");
    let pk = c.take(32, &what("Ed25519 public key"), &mut scratch)?;
    let sig = c.take(64, &what("Ed25519 signature"), &mut scratch)?;
    let ml = if hybrid {
        let pk = c.take(
            keys::MLDSA87_PUBLIC_LEN as u64,
            &what("ML-DSA-87 public key"),
            &mut scratch,
        )?;
        let sig = c.take(
            keys::MLDSA87_SIGNATURE_LEN as u64,
            &what("ML-DSA-87 signature"),
            &mut scratch,
        )?;
        Some((pk, sig))
    } else {
        None
    };
    let mut ed25519_public = [0u8; 32];
    ed25519_public.copy_from_slice(&pk);
    let mut ed25519_signature = [0u8; 64];
    ed25519_signature.copy_from_slice(&sig);
    Ok(SignatureBlock {
        ed25519_public,
        ed25519_signature,
        ml_dsa_87: ml,
    })
}

impl Delta {
    /// Scans the structure. Reads every byte except chunk payloads, whose extents it checks.
    pub fn scan(src: &dyn Source) -> Result<Delta, DeltaError> {
        let len = src.len();
        let mut head = vec![0u8; len.min(HEADER_LEN as u64) as usize];
        src.read_exact_at(0, &mut head)
            .map_err(|source| DeltaError::Io { offset: 0, source })?;
        let (version, compression, flags, checksum) = read_header(&head)?;

        let mut skel: Vec<u8> = head[..8].to_vec();
        let mut c = Cursor {
            src,
            pos: HEADER_LEN as u64,
            len,
        };

        // Metadata section.
        let metadata_len = c.u32(&|| "metadata length".into(), &mut skel)?;
        if metadata_len > MAX_METADATA_LEN {
            return Err(DeltaError::MetadataTooLong { len: metadata_len });
        }
        let meta_offset = c.pos;
        let meta_bytes = c.take(metadata_len as u64, &|| "metadata".into(), &mut skel)?;
        let metadata = Metadata::from_json(&meta_bytes).map_err(|reason| DeltaError::Metadata {
            offset: meta_offset,
            reason,
        })?;

        // Tensor section.
        let cs_offset = c.pos;
        let chunk_size = c.u32(&|| "chunk size".into(), &mut skel)?;
        if !chunk_size.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
        {
            return Err(DeltaError::BadChunkSize {
                offset: cs_offset,
                size: chunk_size,
            });
        }
        let count_offset = c.pos;
        let count = c.u32(&|| "tensor count".into(), &mut skel)?;
        if count > MAX_TENSORS {
            return Err(DeltaError::TooManyTensors {
                offset: count_offset,
                count,
            });
        }

        let mut table = TensorTable {
            tensors: Vec::with_capacity(count.min(1024) as usize),
            names: HashMap::new(),
            chunks: Vec::new(),
            slots: Vec::new(),
        };
        for index in 0..count {
            table.read_tensor(&mut c, &mut skel, index, chunk_size, compression)?;
        }
        let TensorTable {
            tensors,
            chunks,
            slots,
            ..
        } = table;

        let signature_offset = c.pos;
        let signature = if flags & FLAG_SIGNED != 0 {
            Some(read_signature(&mut c, flags & FLAG_HYBRID != 0)?)
        } else {
            None
        };
        if c.pos != len {
            return Err(DeltaError::TrailingBytes {
                offset: c.pos,
                count: len - c.pos,
                after: if signature.is_some() {
                    "signature section"
                } else {
                    "tensor section"
                },
            });
        }

        Ok(Delta {
            version,
            compression,
            flags,
            checksum,
            metadata,
            metadata_len,
            chunk_size,
            tensors,
            chunks,
            signature,
            signature_offset,
            file_len: len,
            skeleton: skel,
            slots,
        })
    }

    pub fn raw_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.raw_len).sum()
    }

    pub fn stored_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.stored_len).sum()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The body digest from the per-chunk digests (in chunk order).
    fn body_digest(&self, chunk_digests: &[[u8; 32]]) -> [u8; 32] {
        let mut skel = self.skeleton.clone();
        for (slot, d) in self.slots.iter().zip(chunk_digests) {
            skel[*slot..*slot + 32].copy_from_slice(d);
        }
        Sha3_256::digest(&skel).into()
    }
}

/// Result of processing one chunk: its digest, and the first content error if any.
pub(super) type ChunkOutcome = ([u8; 32], Option<DeltaError>);

/// Checks a chunk's stored bytes and decodes them into `raw` (raw chunks are copied).
fn decode_stored(
    delta: &Delta,
    ch: &ChunkRef,
    stored: &[u8],
    raw: &mut Vec<u8>,
) -> Option<DeltaError> {
    if ch.is_raw() {
        raw.clear();
        raw.extend_from_slice(stored);
        return None;
    }
    raw.resize(ch.raw_len as usize, 0);
    decode_compressed(delta, ch, stored, raw)
}

/// Decompresses a compressed chunk's stored bytes into `raw` (`ch.raw_len` bytes long),
/// checking the decoded size.
pub(super) fn decode_compressed(
    delta: &Delta,
    ch: &ChunkRef,
    stored: &[u8],
    raw: &mut [u8],
) -> Option<DeltaError> {
    let name = || delta.tensors[ch.tensor as usize].name.clone();
    match lz4_flex::block::decompress_into(stored, raw) {
        Ok(n) if n == ch.raw_len as usize => None,
        Ok(n) => Some(DeltaError::DecompressedSize {
            name: name(),
            chunk: ch.index,
            offset: ch.offset,
            declared: ch.raw_len,
            actual: n as u64,
        }),
        Err(lz4_flex::block::DecompressError::OutputTooSmall { expected, .. }) => {
            Some(DeltaError::DecompressedSize {
                name: name(),
                chunk: ch.index,
                offset: ch.offset,
                declared: ch.raw_len,
                actual: expected as u64,
            })
        }
        Err(e) => Some(DeltaError::Decompress {
            name: name(),
            chunk: ch.index,
            offset: ch.offset,
            reason: e.to_string(),
        }),
    }
}

pub(super) fn read_stored(
    src: &dyn Source,
    ch: &ChunkRef,
    buf: &mut Vec<u8>,
) -> Result<(), DeltaError> {
    buf.resize(ch.stored_len as usize, 0);
    src.read_exact_at(ch.data_offset(), buf)
        .map_err(|source| DeltaError::Io {
            offset: ch.data_offset(),
            source,
        })
}

/// Reads, hashes and decodes one chunk. `raw` receives the decoded bytes.
fn process_chunk(
    src: &dyn Source,
    delta: &Delta,
    ch: &ChunkRef,
    stored: &mut Vec<u8>,
    raw: &mut Vec<u8>,
) -> Result<ChunkOutcome, DeltaError> {
    read_stored(src, ch, stored)?;
    let digest = crate::core::hash::sha3_256(stored);
    Ok((digest, decode_stored(delta, ch, stored, raw)))
}

/// Consecutive runs of chunks with equal stored length, at most `lanes` long: the units that
/// multi-buffer SHA3 hashes together.
pub(super) fn groups(chunks: &[ChunkRef], lanes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < chunks.len() {
        let mut end = start + 1;
        while end < chunks.len()
            && end - start < lanes
            && chunks[end].stored_len == chunks[start].stored_len
        {
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Reads a group of chunks, hashes them together, and checks (and, when `keep`, returns) their
/// decoded bytes. `bufs` and `scratch` are reused between groups.
fn process_group(
    src: &dyn Source,
    delta: &Delta,
    group: &[ChunkRef],
    bufs: &mut Vec<Vec<u8>>,
    scratch: &mut Vec<u8>,
    keep: bool,
) -> Result<GroupOutcome, DeltaError> {
    bufs.resize_with(group.len().max(bufs.len()), Vec::new);
    for (ch, buf) in group.iter().zip(bufs.iter_mut()) {
        read_stored(src, ch, buf)?;
    }
    let refs: Vec<&[u8]> = bufs[..group.len()].iter().map(|b| b.as_slice()).collect();
    let digests = crate::core::hash::multi::sha3_256_many(&refs);
    let mut out = Vec::with_capacity(group.len());
    for (i, ch) in group.iter().enumerate() {
        let (err, data) = if ch.is_raw() {
            // Nothing to decode: the stored bytes are the data.
            (
                None,
                if keep {
                    std::mem::take(&mut bufs[i])
                } else {
                    Vec::new()
                },
            )
        } else if keep {
            let mut raw = Vec::new();
            let e = decode_stored(delta, ch, &bufs[i], &mut raw);
            (e, raw)
        } else {
            (decode_stored(delta, ch, &bufs[i], scratch), Vec::new())
        };
        out.push(((digests[i], err), data));
    }
    Ok(out)
}

/// Each chunk of a group: its outcome and, when kept, its decoded bytes.
type GroupOutcome = Vec<(ChunkOutcome, Vec<u8>)>;

/// Receives decoded chunks in file order.
type ChunkSink<'a> = dyn FnMut(&ChunkRef, &[u8]) -> std::io::Result<()> + 'a;

/// Runs over all chunks in parallel groups, in bounded memory, handing decoded bytes to `sink`
/// in file order. Returns every chunk's digest and the first content error.
fn stream_chunks(
    src: &dyn Source,
    delta: &Delta,
    mut sink: Option<&mut ChunkSink<'_>>,
) -> Result<(Vec<[u8; 32]>, Option<DeltaError>), StreamError> {
    let lanes = crate::core::hash::multi::lanes().max(1);
    let groups = groups(&delta.chunks, lanes);
    let keep = sink.is_some();
    // Without a sink every group can run at once (each worker holds one group's buffers);
    // with one, a window of groups is decoded, then written in order.
    let window = if keep {
        rayon::current_num_threads().max(1)
    } else {
        groups.len().max(1)
    };
    let mut digests = Vec::with_capacity(delta.chunks.len());
    let mut first_err: Option<DeltaError> = None;
    for win in groups.chunks(window) {
        let results: Vec<Result<GroupOutcome, DeltaError>> = win
            .par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(bufs, scratch), g| {
                    process_group(src, delta, &delta.chunks[g.clone()], bufs, scratch, keep)
                },
            )
            .collect();
        for (g, res) in win.iter().zip(results) {
            let outcomes = res.map_err(StreamError::Delta)?;
            for (ch, ((d, e), data)) in delta.chunks[g.clone()].iter().zip(outcomes) {
                digests.push(d);
                if first_err.is_none() {
                    first_err = e;
                }
                if let (None, Some(sink)) = (&first_err, sink.as_mut()) {
                    sink(ch, &data).map_err(StreamError::Sink)?;
                }
            }
        }
    }
    Ok((digests, first_err))
}

#[derive(Debug)]
enum StreamError {
    Delta(DeltaError),
    Sink(std::io::Error),
}

/// What [`verify`] checks beyond structure and checksum.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// When set, the signer must be in this set.
    pub trusted: Option<TrustedKeys>,
    /// Fail unsigned deltas (implied by `trusted`).
    pub require_signature: bool,
    pub min_seq: Option<u64>,
    /// Required `base_hash` (lowercase hex).
    pub base_hash: Option<String>,
}

/// A delta that passed [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub delta: Delta,
    /// Full SHA3-256 body digest; its first 16 bytes are the header checksum.
    pub digest: [u8; 32],
    pub signer: Option<PublicIdentity>,
    /// Label of the matching trusted-keys entry, if any.
    pub trusted_label: Option<String>,
    pub trusted: bool,
}

impl VerifyReport {
    pub fn digest_hex(&self) -> String {
        hex32(&self.digest)
    }
}

/// Checks signatures against the digest, then trust and policy.
fn check_signature_and_policy(
    delta: &Delta,
    digest: &[u8; 32],
    opts: &VerifyOptions,
) -> Result<(Option<PublicIdentity>, Option<String>, bool), DeltaError> {
    let mut signer = None;
    if let Some(sig) = &delta.signature {
        let off = delta.signature_offset;
        let ml_pk = sig.ml_dsa_87.as_ref().map(|(pk, _)| pk.as_slice());
        let id = PublicIdentity::from_raw(&sig.ed25519_public, ml_pk).map_err(|reason| {
            DeltaError::BadPublicKey {
                algorithm: if reason.contains("ML-DSA") {
                    "ML-DSA-87"
                } else {
                    "Ed25519"
                },
                offset: off,
                reason,
            }
        })?;
        let msg = signing_message(digest, &sig.ed25519_public, ml_pk);
        if !id.verify_ed25519(&msg, &sig.ed25519_signature) {
            return Err(DeltaError::BadSignature {
                algorithm: "Ed25519",
                offset: off + 32,
            });
        }
        if let Some((_, pq_sig)) = &sig.ml_dsa_87
            && !id.verify_ml_dsa(&msg, SIGNATURE_CONTEXT, pq_sig)
        {
            let pq_off = off + 96 + keys::MLDSA87_PUBLIC_LEN as u64;
            return Err(DeltaError::BadSignature {
                algorithm: "ML-DSA-87",
                offset: pq_off,
            });
        }
        signer = Some(id);
    }
    let mut label = None;
    let mut trusted = false;
    if let Some(keys) = &opts.trusted {
        let Some(id) = &signer else {
            return Err(DeltaError::Unsigned);
        };
        let entry = keys
            .find(id.ed25519.as_bytes())
            .ok_or_else(|| DeltaError::Untrusted {
                worker_id: id.worker_id(),
                ed25519: id.ed25519_base64(),
            })?;
        if let Some(pq) = &entry.ml_dsa_87 {
            match id.ml_dsa_bytes() {
                None => {
                    return Err(DeltaError::TrustedPqMismatch {
                        worker_id: id.worker_id(),
                        problem: "the delta has no ML-DSA-87 signature",
                    });
                }
                Some(b) if &b != pq => {
                    return Err(DeltaError::TrustedPqMismatch {
                        worker_id: id.worker_id(),
                        problem: "the delta's ML-DSA-87 key differs",
                    });
                }
                Some(_) => {}
            }
        }
        label = entry.label.clone();
        trusted = true;
    } else if opts.require_signature && signer.is_none() {
        return Err(DeltaError::Unsigned);
    }
    if let Some(min) = opts.min_seq
        && delta.metadata.seq < min
    {
        return Err(DeltaError::StaleSequence {
            seq: delta.metadata.seq,
            min,
        });
    }
    if let Some(want) = &opts.base_hash {
        let found = delta
            .metadata
            .base_hash
            .clone()
            .unwrap_or_else(|| "(none)".into());
        if &found != want {
            return Err(DeltaError::BaseHash {
                found,
                expected: want.clone(),
            });
        }
    }
    Ok((signer, label, trusted))
}

pub(super) fn finish(
    delta: Delta,
    digests: &[[u8; 32]],
    content_err: Option<DeltaError>,
    opts: &VerifyOptions,
) -> Result<VerifyReport, DeltaError> {
    let digest = delta.body_digest(digests);
    if digest[..16] != delta.checksum {
        return Err(DeltaError::Checksum {
            stored: hex32(&delta.checksum),
            computed: hex32(&digest[..16]),
        });
    }
    if let Some(e) = content_err {
        return Err(e);
    }
    let (signer, trusted_label, trusted) = check_signature_and_policy(&delta, &digest, opts)?;
    Ok(VerifyReport {
        delta,
        digest,
        signer,
        trusted_label,
        trusted,
    })
}

/// Full check: structure, every chunk (hash, decompression, sizes), checksum, signatures,
/// trust and policy. Memory stays bounded by a few chunks per thread.
pub fn verify(src: &dyn Source, opts: &VerifyOptions) -> Result<VerifyReport, DeltaError> {
    let delta = Delta::scan(src)?;
    let (digests, err) = stream_chunks(src, &delta, None).map_err(|e| match e {
        StreamError::Delta(d) => d,
        StreamError::Sink(source) => DeltaError::Io { offset: 0, source },
    })?;
    finish(delta, &digests, err, opts)
}

/// Receives each verified chunk's decoded bytes, with the delta it belongs to.
pub type VerifiedChunkSink<'a> = dyn FnMut(&Delta, &ChunkRef, &[u8]) -> std::io::Result<()> + 'a;

/// [`verify`] that also hands every chunk's decoded bytes to `sink`, in file order (so tensor
/// by tensor), from the same pass that hashes them: the bytes a reader gets are the bytes that
/// verified, read once. The caller must discard what it got when this returns an error.
pub fn verify_streaming(
    src: &dyn Source,
    opts: &VerifyOptions,
    sink: &mut VerifiedChunkSink<'_>,
) -> Result<VerifyReport, DeltaError> {
    let delta = Delta::scan(src)?;
    let mut each = |ch: &ChunkRef, raw: &[u8]| sink(&delta, ch, raw);
    let (digests, err) = stream_chunks(src, &delta, Some(&mut each)).map_err(|e| match e {
        StreamError::Delta(d) => d,
        StreamError::Sink(source) => DeltaError::Io { offset: 0, source },
    })?;
    finish(delta, &digests, err, opts)
}

/// [`verify`] on bytes in memory (tests, fuzzing).
pub fn read_bytes(bytes: &[u8], opts: &VerifyOptions) -> Result<VerifyReport, DeltaError> {
    verify(&bytes, opts)
}

/// Decodes every tensor to `out` as a safetensors file, checking everything [`verify`] checks.
/// The caller must discard `out` on error (gym writes it to a temporary file).
pub fn unpack_to_safetensors(
    src: &dyn Source,
    opts: &VerifyOptions,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
) -> Result<UnpackSummary, UnpackError> {
    let delta = Delta::scan(src)?;
    let st_meta = delta
        .metadata
        .extra
        .as_ref()
        .and_then(|e| e.get("safetensors_metadata"))
        .and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect::<Vec<_>>()
        });
    let specs: Vec<crate::core::safetensors_io::TensorSpec> = delta
        .tensors
        .iter()
        .map(|t| crate::core::safetensors_io::TensorSpec {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            len: t.raw_len,
        })
        .collect();
    let header = crate::core::safetensors_io::header_bytes(&specs, st_meta.as_deref());
    out.write_all(&header).map_err(UnpackError::Write)?;
    let mut done = 0u64;
    let mut sink = |_ch: &ChunkRef, raw: &[u8]| -> std::io::Result<()> {
        out.write_all(raw)?;
        done += raw.len() as u64;
        progress(done);
        Ok(())
    };
    let (digests, err) = stream_chunks(src, &delta, Some(&mut sink)).map_err(|e| match e {
        StreamError::Delta(d) => UnpackError::Delta(d),
        StreamError::Sink(s) => UnpackError::Write(s),
    })?;
    let report = finish(delta, &digests, err, opts)?;
    Ok(UnpackSummary { report })
}

#[derive(Debug)]
pub struct UnpackSummary {
    pub report: VerifyReport,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error("writing output: {0}")]
    Write(std::io::Error),
}

impl crate::core::error::Classify for UnpackError {
    fn class(&self) -> crate::core::error::ErrorClass {
        match self {
            UnpackError::Delta(d) => d.class(),
            UnpackError::Write(_) => crate::core::error::ErrorClass::Io,
        }
    }
}

/// Decodes one tensor fully into memory (for `diff` and tests). The delta must have been
/// verified first; content errors are still reported.
pub fn read_tensor(
    src: &dyn Source,
    delta: &Delta,
    t: &TensorEntry,
    mut each: impl FnMut(&[u8]),
) -> Result<(), DeltaError> {
    let mut s = Vec::new();
    let mut r = Vec::new();
    for ch in &delta.chunks[t.chunks.clone()] {
        let (_, e) = process_chunk(src, delta, ch, &mut s, &mut r)?;
        if let Some(e) = e {
            return Err(e);
        }
        each(&r);
    }
    Ok(())
}

/// Decodes one chunk into `raw`, failing on any content error.
pub(super) fn decode_chunk(
    src: &dyn Source,
    delta: &Delta,
    ch: &ChunkRef,
    stored: &mut Vec<u8>,
    raw: &mut Vec<u8>,
) -> Result<(), DeltaError> {
    match process_chunk(src, delta, ch, stored, raw)? {
        (_, Some(e)) => Err(e),
        (_, None) => Ok(()),
    }
}
