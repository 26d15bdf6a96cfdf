//! The test-vector generator behind `testdata/vectors/`. Deterministic: fixed keys, fixed
//! timestamps, fixed data. Invalid vectors are built with [`RawDelta`], an encoder independent
//! of [`super::pack`] that can write any structure (and recompute the checksum over it), so that
//! each vector fails for exactly the reason it names.

use sha3::{Digest, Sha3_256};

use super::sign::{SIGNATURE_CONTEXT, SignatureBlock, signing_message};
use super::*;
use crate::core::keys::{Identity, KeyError, b64};

/// A delta written field by field, with no validation.
#[derive(Clone)]
pub struct RawDelta {
    pub magic: Vec<u8>,
    pub version: u8,
    pub compression: u8,
    pub flags: u8,
    pub metadata: Vec<u8>,
    pub chunk_size: u32,
    pub tensors: Vec<RawTensor>,
    /// Signature section bytes, appended after the tensor section.
    pub signature: Vec<u8>,
    pub trailing: Vec<u8>,
}

#[derive(Clone)]
pub struct RawTensor {
    pub name: Vec<u8>,
    pub name_len: Option<u32>,
    pub dtype: u8,
    pub rank: Option<u8>,
    pub shape: Vec<u64>,
    pub data_len: Option<u64>,
    /// (raw_len, stored_len, payload)
    pub chunks: Vec<(u32, u32, Vec<u8>)>,
}

impl RawTensor {
    /// A tensor of `dtype` with `data` split into chunks; lz4-compressed where that helps.
    pub fn new(
        name: &str,
        dtype: Dtype,
        shape: &[u64],
        data: &[u8],
        chunk_size: u32,
        lz4: bool,
    ) -> Self {
        let chunks = data
            .chunks(chunk_size as usize)
            .map(|c| {
                if lz4 {
                    let z = lz4_flex::block::compress(c);
                    if z.len() < c.len() {
                        return (c.len() as u32, z.len() as u32, z);
                    }
                }
                (c.len() as u32, c.len() as u32, c.to_vec())
            })
            .collect();
        RawTensor {
            name: name.as_bytes().to_vec(),
            name_len: None,
            dtype: dtype.code(),
            rank: None,
            shape: shape.to_vec(),
            data_len: None,
            chunks,
        }
    }
}

impl RawDelta {
    /// The body digest per the spec: SHA3-256 of header[5..8] preceded by the magic, then the
    /// body with each chunk payload replaced by its SHA3-256.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha3_256::new();
        let mut head = self.magic.clone();
        head.resize(5, 0);
        head.extend_from_slice(&[self.version, self.compression, self.flags]);
        h.update(&head);
        self.body(&mut |bytes, is_payload| {
            if is_payload {
                h.update(Sha3_256::digest(bytes));
            } else {
                h.update(bytes);
            }
        });
        h.finalize().into()
    }

    fn body(&self, out: &mut dyn FnMut(&[u8], bool)) {
        out(&(self.metadata.len() as u32).to_le_bytes(), false);
        out(&self.metadata, false);
        out(&self.chunk_size.to_le_bytes(), false);
        out(&(self.tensors.len() as u32).to_le_bytes(), false);
        for t in &self.tensors {
            out(
                &t.name_len.unwrap_or(t.name.len() as u32).to_le_bytes(),
                false,
            );
            out(&t.name, false);
            out(&[t.dtype, t.rank.unwrap_or(t.shape.len() as u8)], false);
            for d in &t.shape {
                out(&d.to_le_bytes(), false);
            }
            let natural: u64 = t.chunks.iter().map(|c| 8 + c.2.len() as u64).sum();
            out(&t.data_len.unwrap_or(natural).to_le_bytes(), false);
            for (raw, stored, payload) in &t.chunks {
                out(&raw.to_le_bytes(), false);
                out(&stored.to_le_bytes(), false);
                out(payload, true);
            }
        }
    }

    /// Encodes with the correct checksum for the content.
    pub fn encode(&self) -> Vec<u8> {
        let d = self.digest();
        self.encode_with_checksum(&d[..16])
    }

    pub fn encode_with_checksum(&self, checksum: &[u8]) -> Vec<u8> {
        let mut v = self.magic.clone();
        v.extend_from_slice(&[self.version, self.compression, self.flags]);
        v.extend_from_slice(checksum);
        self.body(&mut |bytes, _| v.extend_from_slice(bytes));
        v.extend_from_slice(&self.signature);
        v.extend_from_slice(&self.trailing);
        v
    }

    /// Sets the signed flags and signature section for `id` over the current content.
    pub fn sign(&mut self, id: &Identity) {
        let public = id.public();
        let pq = public.ml_dsa_bytes();
        self.flags |= FLAG_SIGNED;
        if pq.is_some() {
            self.flags |= FLAG_HYBRID;
        }
        let digest = self.digest();
        let ed_pk = *public.ed25519.as_bytes();
        let msg = signing_message(&digest, &ed_pk, pq.as_deref());
        let block = SignatureBlock {
            ed25519_public: ed_pk,
            ed25519_signature: id.sign_ed25519(&msg),
            ml_dsa_87: pq.map(|pk| {
                (
                    pk,
                    id.sign_ml_dsa(&msg, SIGNATURE_CONTEXT)
                        .expect("hybrid identity"),
                )
            }),
        };
        self.signature = block.encode();
    }
}

/// Fixed identities of the vectors. Seeds are public: these keys protect nothing.
pub fn signer_a() -> Identity {
    Identity::from_seeds(&[0xA1; 32], None)
}
pub fn signer_b_hybrid() -> Identity {
    Identity::from_seeds(&[0xB2; 32], Some(&[0xB3; 32]))
}
pub fn signer_c_untrusted() -> Identity {
    Identity::from_seeds(&[0xC4; 32], None)
}

const TIMESTAMP: &str = "2024-01-01T00:00:00Z";

fn meta(worker: &str, seq: u64) -> Metadata {
    let mut m = Metadata::new(worker);
    m.timestamp = TIMESTAMP.into();
    m.epoch = 1;
    m.step = 50;
    m.seq = seq;
    m.loss = Some(2.34);
    m.base_hash = Some(hex::encode(Sha3_256::digest(b"gym test-vector base model")));
    m.compute = Some(Compute {
        tokens: 4096,
        flops: 1.5e12,
        device: "cpu".into(),
        wall_seconds: 12.5,
    });
    m
}

/// Deterministic pseudo-random bytes (SplitMix64), so vectors never depend on a RNG crate.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// LoRA-like f32 values: small normal-ish numbers.
fn lora_f32(seed: u64, n: usize) -> Vec<u8> {
    let raw = bytes(seed, n * 4);
    let mut out = Vec::with_capacity(n * 4);
    for c in raw.chunks(4) {
        let u = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64 / u32::MAX as f64;
        let v = ((u - 0.5) * 0.02) as f32;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn lora_tensors(chunk: u32, lz4: bool) -> Vec<RawTensor> {
    vec![
        RawTensor::new(
            "lora.k_proj.weight",
            Dtype::F32,
            &[8, 16],
            &lora_f32(2, 128),
            chunk,
            lz4,
        ),
        RawTensor::new(
            "lora.q_proj.weight",
            Dtype::F32,
            &[8, 16],
            &lora_f32(1, 128),
            chunk,
            lz4,
        ),
    ]
}

fn base(worker: &str, seq: u64) -> RawDelta {
    RawDelta {
        magic: MAGIC.to_vec(),
        version: VERSION,
        compression: Compression::Lz4.code(),
        flags: 0,
        metadata: meta(worker, seq).to_json().expect("valid metadata"),
        chunk_size: DEFAULT_CHUNK_SIZE,
        tensors: lora_tensors(DEFAULT_CHUNK_SIZE, true),
        signature: Vec::new(),
        trailing: Vec::new(),
    }
}

/// One vector: file name, bytes, and what verifying it must give.
pub struct Vector {
    pub file: String,
    pub bytes: Vec<u8>,
    pub cases: Vec<Case>,
}

/// One check of a vector under given options.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Case {
    pub file: String,
    pub description: String,
    /// "valid" or "invalid"
    pub expect: String,
    /// Error class when invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Error kind when invalid (see `DeltaError::kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Trusted keys file, relative to the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_keys: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_hash: Option<String>,
    /// Body digest (hex) a valid vector must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The manifest file's shape.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub vectors: Vec<Case>,
}

pub const MANIFEST_FORMAT: &str = "gym-delta-vectors/1";
pub const TRUSTED_FILE: &str = "trusted-keys.txt";

fn case(file: &str, description: &str, class: Option<&str>) -> Case {
    Case {
        file: file.into(),
        description: description.into(),
        expect: if class.is_some() {
            "invalid".into()
        } else {
            "valid".into()
        },
        class: class.map(str::to_string),
        error: None,
        trusted_keys: None,
        min_seq: None,
        base_hash: None,
        digest: None,
    }
}

/// The three test signers: trusted Ed25519, trusted hybrid, untrusted.
struct Signers {
    a: Identity,
    b: Identity,
    c: Identity,
}

/// The valid vectors that invalid ones are made from.
struct Originals {
    unsigned: RawDelta,
    signed: RawDelta,
    signed_bytes: Vec<u8>,
    hybrid: RawDelta,
    hybrid_bytes: Vec<u8>,
}

fn push(vs: &mut Vec<Vector>, file: &str, raw: Vec<u8>, cases: Vec<Case>) {
    vs.push(Vector {
        file: file.into(),
        bytes: raw,
        cases,
    });
}

/// A case checked against the trusted keys file.
fn trusted(mut k: Case) -> Case {
    k.trusted_keys = Some(TRUSTED_FILE.into());
    k
}

/// Every vector file, the trusted keys file and the manifest, as (file name, bytes).
pub fn generate() -> Vec<(String, Vec<u8>)> {
    let signers = Signers {
        a: signer_a(),
        b: signer_b_hybrid(),
        c: signer_c_untrusted(),
    };
    let mut vs: Vec<Vector> = Vec::new();
    let originals = signed_vectors(&mut vs, &signers);
    layout_vectors(&mut vs);
    chunk_and_adapter_vectors(&mut vs);
    header_vectors(&mut vs);
    content_vectors(&mut vs, &signers, &originals);
    truncation_vectors(&mut vs, &originals);
    structure_vectors(&mut vs, &signers);
    outputs(vs, &signers)
}

/// The valid vectors: unsigned, Ed25519-signed and hybrid-signed.
fn signed_vectors(vs: &mut Vec<Vector>, s: &Signers) -> Originals {
    let (a, b) = (&s.a, &s.b);
    let unsigned = base("worker-a", 1);
    push(
        vs,
        "valid-unsigned.delta",
        unsigned.encode(),
        vec![
            case(
                "valid-unsigned.delta",
                "unsigned, lz4, two f32 LoRA tensors",
                None,
            ),
            trusted(case(
                "valid-unsigned.delta",
                "an unsigned delta when trusted keys are required",
                Some("untrusted"),
            )),
        ],
    );

    let mut signed = base(&a.public().worker_id(), 7);
    signed.sign(a);
    let signed_bytes = signed.encode();
    push(
        vs,
        "valid-ed25519.delta",
        signed_bytes.clone(),
        vec![
            trusted(case(
                "valid-ed25519.delta",
                "Ed25519-signed by a trusted signer",
                None,
            )),
            {
                let mut k = trusted(case(
                    "valid-ed25519.delta",
                    "sequence number 7 below --min-seq 8",
                    Some("policy"),
                ));
                k.min_seq = Some(8);
                k
            },
            {
                let mut k = case(
                    "valid-ed25519.delta",
                    "base hash differs from the required one",
                    Some("policy"),
                );
                k.base_hash = Some(hex::encode([0u8; 32]));
                k
            },
        ],
    );

    let mut hybrid = base(&b.public().worker_id(), 3);
    hybrid.sign(b);
    let hybrid_bytes = hybrid.encode();
    push(
        vs,
        "valid-hybrid.delta",
        hybrid_bytes.clone(),
        vec![trusted(case(
            "valid-hybrid.delta",
            "hybrid Ed25519 + ML-DSA-87 signature, trusted",
            None,
        ))],
    );

    Originals {
        unsigned,
        signed,
        signed_bytes,
        hybrid,
        hybrid_bytes,
    }
}

/// The valid vectors of each layout feature: no compression, every dtype, empty and scalar
/// tensors.
fn layout_vectors(vs: &mut Vec<Vector>) {
    let mut raw0 = base("worker-a", 2);
    raw0.compression = Compression::None.code();
    raw0.tensors = lora_tensors(DEFAULT_CHUNK_SIZE, false);
    push(
        vs,
        "valid-uncompressed.delta",
        raw0.encode(),
        vec![case(
            "valid-uncompressed.delta",
            "compression 0 (none)",
            None,
        )],
    );

    let mut all = base("worker-a", 4);
    all.tensors = Dtype::all()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let shape = [2u64, 4];
            let len = d.byte_len(8).expect("8 elements are whole bytes") as usize;
            let mut data = bytes(100 + i as u64, len);
            if *d == Dtype::Bool {
                data.iter_mut().for_each(|x| *x &= 1);
            }
            RawTensor::new(
                &format!("dtype.{}", d.name()),
                *d,
                &shape,
                &data,
                DEFAULT_CHUNK_SIZE,
                true,
            )
        })
        .collect();
    push(
        vs,
        "valid-all-dtypes.delta",
        all.encode(),
        vec![case(
            "valid-all-dtypes.delta",
            "one tensor of every dtype",
            None,
        )],
    );

    let mut empty = base("worker-a", 5);
    empty.tensors = vec![
        RawTensor::new("empty", Dtype::F32, &[0, 16], &[], DEFAULT_CHUNK_SIZE, true),
        RawTensor::new(
            "scalar",
            Dtype::F64,
            &[],
            &1.5f64.to_le_bytes(),
            DEFAULT_CHUNK_SIZE,
            true,
        ),
    ];
    push(
        vs,
        "valid-empty-tensor.delta",
        empty.encode(),
        vec![case(
            "valid-empty-tensor.delta",
            "a zero-element tensor and a rank-0 scalar",
            None,
        )],
    );
}

/// The valid vectors of a tensor in several chunks and of a PEFT adapter config.
fn chunk_and_adapter_vectors(vs: &mut Vec<Vector>) {
    let mut multi = base("worker-a", 6);
    multi.chunk_size = 256;
    // Half compressible, half random: both LZ4 and raw chunks, and a partial last chunk.
    let mut data = vec![0u8; 600];
    data.extend_from_slice(&bytes(7, 600));
    multi.tensors = vec![RawTensor::new(
        "lora.v_proj.weight",
        Dtype::F32,
        &[300],
        &data,
        256,
        true,
    )];
    push(
        vs,
        "valid-multi-chunk.delta",
        multi.encode(),
        vec![case(
            "valid-multi-chunk.delta",
            "one tensor in 5 chunks of 256 bytes (LZ4 and raw, partial last)",
            None,
        )],
    );

    let mut peft = base("worker-a", 8);
    let mut cfg = serde_json::Map::new();
    cfg.insert("peft_type".into(), "LORA".into());
    cfg.insert("r".into(), 8.into());
    cfg.insert("lora_alpha".into(), 16.into());
    cfg.insert(
        "target_modules".into(),
        serde_json::json!(["q_proj", "v_proj"]),
    );
    let mut m = meta("worker-a", 8);
    m.adapter_config = Some(cfg);
    peft.metadata = m.to_json().expect("valid");
    peft.tensors = vec![RawTensor::new(
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        Dtype::F32,
        &[8, 16],
        &lora_f32(9, 128),
        DEFAULT_CHUNK_SIZE,
        true,
    )];
    push(
        vs,
        "valid-peft.delta",
        peft.encode(),
        vec![case(
            "valid-peft.delta",
            "a PEFT adapter with its adapter_config",
            None,
        )],
    );
}

/// Invalid vectors: a bad field in the header.
fn header_vectors(vs: &mut Vec<Vector>) {
    let mut x = base("worker-a", 1);
    x.magic = b"DELTB".to_vec();
    push(
        vs,
        "bad-magic.delta",
        x.encode(),
        vec![case("bad-magic.delta", "magic is DELTB", Some("malformed"))],
    );

    let mut x = base("worker-a", 1);
    x.version = 2;
    push(
        vs,
        "unknown-version.delta",
        x.encode(),
        vec![case(
            "unknown-version.delta",
            "version 2",
            Some("unsupported"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.compression = 7;
    push(
        vs,
        "unknown-compression.delta",
        x.encode(),
        vec![case(
            "unknown-compression.delta",
            "compression code 7",
            Some("unsupported"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.flags = 0x04;
    push(
        vs,
        "unknown-flag.delta",
        x.encode(),
        vec![case(
            "unknown-flag.delta",
            "flag bit 2 set",
            Some("unsupported"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.flags = FLAG_HYBRID;
    push(
        vs,
        "hybrid-without-signed.delta",
        x.encode(),
        vec![case(
            "hybrid-without-signed.delta",
            "hybrid flag without the signed flag",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.tensors[0].dtype = 200;
    push(
        vs,
        "unknown-dtype.delta",
        x.encode(),
        vec![case(
            "unknown-dtype.delta",
            "dtype code 200",
            Some("unsupported"),
        )],
    );
}

/// Invalid vectors: a well-formed header over bad content (chunks, signatures, policy).
fn content_vectors(vs: &mut Vec<Vector>, s: &Signers, o: &Originals) {
    let (a, c) = (&s.a, &s.c);
    let Originals {
        signed,
        signed_bytes,
        hybrid,
        hybrid_bytes,
        ..
    } = o;
    let mut x = base("worker-a", 1);
    x.compression = 0;
    x.tensors = lora_tensors(DEFAULT_CHUNK_SIZE, false);
    let good = x.encode();
    let mut flipped = good.clone();
    let pos = good.len() - 100; // inside the last tensor's raw data
    flipped[pos] ^= 0x01;
    push(
        vs,
        "checksum-flipped-bit.delta",
        flipped,
        vec![case(
            "checksum-flipped-bit.delta",
            "one data bit flipped after packing",
            Some("checksum"),
        )],
    );

    let mut bad_sig = signed_bytes.clone();
    let n = bad_sig.len();
    bad_sig[n - 1] ^= 0x80; // last byte of the Ed25519 signature
    push(
        vs,
        "bad-signature.delta",
        bad_sig,
        vec![case(
            "bad-signature.delta",
            "one bit of the Ed25519 signature flipped",
            Some("signature"),
        )],
    );

    let mut bad_pq = hybrid_bytes.clone();
    let n = bad_pq.len();
    bad_pq[n - 10] ^= 0x01;
    push(
        vs,
        "bad-signature-mldsa.delta",
        bad_pq,
        vec![case(
            "bad-signature-mldsa.delta",
            "one bit of the ML-DSA-87 signature flipped",
            Some("signature"),
        )],
    );

    let mut tampered = signed.clone();
    tampered.metadata = meta(&a.public().worker_id(), 700).to_json().expect("valid");
    push(
        vs,
        "tampered-metadata.delta",
        tampered.encode(),
        vec![case(
            "tampered-metadata.delta",
            "sequence number changed after signing, checksum recomputed",
            Some("signature"),
        )],
    );

    let mut stripped = signed.clone();
    stripped.flags = 0;
    stripped.signature.clear();
    push(
        vs,
        "stripped-signature.delta",
        stripped.encode(),
        vec![trusted(case(
            "stripped-signature.delta",
            "signature removed and checksum recomputed, trusted keys required",
            Some("untrusted"),
        ))],
    );

    let mut downgrade = hybrid.clone();
    downgrade.flags = FLAG_SIGNED;
    downgrade.signature.truncate(96);
    push(
        vs,
        "hybrid-downgrade.delta",
        downgrade.encode(),
        vec![case(
            "hybrid-downgrade.delta",
            "ML-DSA-87 part removed from a hybrid delta, checksum recomputed",
            Some("signature"),
        )],
    );

    let mut untrusted = base(&c.public().worker_id(), 1);
    untrusted.sign(c);
    push(
        vs,
        "untrusted-signer.delta",
        untrusted.encode(),
        vec![
            case(
                "untrusted-signer.delta",
                "validly signed, no trust list given",
                None,
            ),
            trusted(case(
                "untrusted-signer.delta",
                "signer not in the trusted keys",
                Some("untrusted"),
            )),
        ],
    );
}

/// Invalid vectors: truncated files, trailing bytes and lengths past the end or a limit.
fn truncation_vectors(vs: &mut Vec<Vector>, o: &Originals) {
    let unsigned = &o.unsigned;
    let whole = unsigned.encode();
    push(
        vs,
        "truncated-header.delta",
        whole[..12].to_vec(),
        vec![case(
            "truncated-header.delta",
            "12 of the 24 header bytes",
            Some("malformed"),
        )],
    );
    push(
        vs,
        "truncated-metadata.delta",
        whole[..24 + 4 + 10].to_vec(),
        vec![case(
            "truncated-metadata.delta",
            "ends inside the metadata JSON",
            Some("malformed"),
        )],
    );
    push(
        vs,
        "truncated-tensor.delta",
        whole[..whole.len() - 50].to_vec(),
        vec![case(
            "truncated-tensor.delta",
            "ends inside the last tensor's data",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.trailing = b"junk".to_vec();
    push(
        vs,
        "trailing-bytes.delta",
        x.encode(),
        vec![case(
            "trailing-bytes.delta",
            "4 bytes after the end",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.tensors[1].name_len = Some(1000);
    push(
        vs,
        "name-length-past-end.delta",
        x.encode(),
        vec![case(
            "name-length-past-end.delta",
            "last tensor's name length runs past the end",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.tensors[0].rank = Some(9);
    x.tensors[0].shape = vec![1; 9];
    push(
        vs,
        "rank-over-limit.delta",
        x.encode(),
        vec![case(
            "rank-over-limit.delta",
            "rank 9 (limit 8)",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.tensors[0].shape = vec![u64::MAX / 2, 4];
    push(
        vs,
        "shape-overflow.delta",
        x.encode(),
        vec![case(
            "shape-overflow.delta",
            "shape product overflows u64",
            Some("malformed"),
        )],
    );
}

/// Invalid vectors: chunks and names that break the format, and a policy refusal of a valid
/// file (a stale sequence number).
fn structure_vectors(vs: &mut Vec<Vector>, s: &Signers) {
    let a = &s.a;
    let mut x = base("worker-a", 1);
    // The last chunk declares 512 stored bytes, but the file ends 400 bytes later.
    let payload = x.tensors[1].chunks[0].2.clone();
    x.tensors[1].chunks[0] = (512, 512, payload[..400].to_vec());
    push(
        vs,
        "chunk-length-past-end.delta",
        x.encode(),
        vec![case(
            "chunk-length-past-end.delta",
            "a chunk's stored length runs past the data",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    // A compressible tensor whose LZ4 block decodes to 508 bytes while 512 are declared.
    let short = lz4_flex::block::compress(&[0u8; 508]);
    x.tensors = vec![RawTensor {
        name: b"zeros".to_vec(),
        name_len: None,
        dtype: Dtype::F32.code(),
        rank: None,
        shape: vec![128],
        data_len: None,
        chunks: vec![(512, short.len() as u32, short)],
    }];
    push(
        vs,
        "decompressed-size-mismatch.delta",
        x.encode(),
        vec![case(
            "decompressed-size-mismatch.delta",
            "an LZ4 chunk decodes to 508 bytes, 512 declared (checksum valid)",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.tensors[1].name = x.tensors[0].name.clone();
    push(
        vs,
        "duplicate-names.delta",
        x.encode(),
        vec![case(
            "duplicate-names.delta",
            "two tensors share a name",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.tensors[0].name = vec![b'l', 0xff, 0xfe, b'a'];
    push(
        vs,
        "non-utf8-name.delta",
        x.encode(),
        vec![case(
            "non-utf8-name.delta",
            "tensor name is not UTF-8",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.metadata =
        br#"{"timestamp":"2024-01-01T00:00:00Z","epoch":1,"seq":1,"worker_id":"w","colour":"red"}"#
            .to_vec();
    push(
        vs,
        "unknown-metadata-field.delta",
        x.encode(),
        vec![case(
            "unknown-metadata-field.delta",
            "metadata has an unknown field",
            Some("malformed"),
        )],
    );

    let mut x = base("worker-a", 1);
    x.chunk_size = 1000;
    push(
        vs,
        "bad-chunk-size.delta",
        x.encode(),
        vec![case(
            "bad-chunk-size.delta",
            "chunk size 1000 is not a power of two",
            Some("malformed"),
        )],
    );

    // Stale sequence number: valid file, policy says otherwise (replay of an old delta).
    let mut old = base(&a.public().worker_id(), 2);
    old.sign(a);
    push(
        vs,
        "stale-seq.delta",
        old.encode(),
        vec![{
            let mut k = trusted(case(
                "stale-seq.delta",
                "sequence number 2 when at least 7 is required",
                Some("policy"),
            ));
            k.min_seq = Some(7);
            k
        }],
    );
}

/// The vector files with each case's outcome recorded in the manifest, the trusted keys file
/// and the manifest.
fn outputs(vs: Vec<Vector>, s: &Signers) -> Vec<(String, Vec<u8>)> {
    let (a, b) = (&s.a, &s.b);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut cases = Vec::new();
    for v in vs {
        for mut k in v.cases {
            match outcome(&v.bytes, &k) {
                Ok(d) => k.digest = Some(hex::encode(d)),
                Err(e) => k.error = Some(e.kind().to_string()),
            }
            cases.push(k);
        }
        files.push((v.file, v.bytes));
    }
    let trusted_text = format!(
        "# Trusted signers of the gym DELTA test vectors (test keys from public seeds: they protect nothing).\n\
         {} signer-a\n{} mldsa87:{} signer-b-hybrid\n",
        a.public().ed25519_base64(),
        b.public().ed25519_base64(),
        b64(&b.public().ml_dsa_bytes().expect("hybrid")),
    );
    files.push((TRUSTED_FILE.into(), trusted_text.into_bytes()));
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        vectors: cases,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    json.push(b'\n');
    files.push(("manifest.json".into(), json));
    files
}

/// What the reader makes of a vector under a case's options: the digest or the error. The
/// manifest records it so that a reader must not only reject a vector but reject it for the
/// intended reason; `tests` check that each vector's recorded class is the intended one.
fn outcome(bytes: &[u8], k: &Case) -> Result<[u8; 32], DeltaError> {
    let trusted = k.trusted_keys.as_ref().map(|_| {
        let a = signer_a().public();
        let b = signer_b_hybrid().public();
        let text = format!(
            "{}\n{} mldsa87:{}\n",
            a.ed25519_base64(),
            b.ed25519_base64(),
            b64(&b.ml_dsa_bytes().expect("hybrid"))
        );
        crate::core::keys::TrustedKeys::parse(&text, std::path::Path::new(TRUSTED_FILE))
            .expect("valid keys")
    });
    let opts = super::read::VerifyOptions {
        trusted,
        require_signature: false,
        min_seq: k.min_seq,
        base_hash: k.base_hash.clone(),
    };
    super::read::read_bytes(bytes, &opts).map(|r| r.digest)
}

/// What verifying a file gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
        }
    }
}

/// One case of a manifest checked: what it expects, what verifying gave, whether they agree.
/// Serialized as a row of `gym-delta-vectors-result/1` (field order is the wire order).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VectorResult {
    pub file: String,
    pub description: String,
    pub expect: String,
    pub expect_class: Option<String>,
    pub got: Verdict,
    pub got_class: Option<ErrorClass>,
    pub expect_error: Option<String>,
    pub got_error: Option<&'static str>,
    pub detail: String,
    pub pass: bool,
}

/// Verifies every case of `manifest` (its files and trusted-keys files relative to `dir`) and
/// compares the outcome with the expected verdict, class, error kind and digest.
pub fn check(manifest: &Manifest, dir: &std::path::Path) -> Result<Vec<VectorResult>, KeyError> {
    let mut results = Vec::with_capacity(manifest.vectors.len());
    for case in &manifest.vectors {
        let mut opts = VerifyOptions {
            min_seq: case.min_seq,
            base_hash: case.base_hash.clone(),
            ..Default::default()
        };
        if let Some(k) = &case.trusted_keys {
            opts.trusted = Some(crate::core::keys::TrustedKeys::load(&dir.join(k))?);
        }
        let got = super::verify_path(&dir.join(&case.file), &opts);
        let (verdict, class, kind, detail, digest) = match &got {
            Ok(r) => (
                Verdict::Valid,
                None,
                None,
                String::new(),
                Some(r.digest_hex()),
            ),
            Err(f) => (
                Verdict::Invalid,
                Some(f.class),
                Some(f.kind),
                f.message.clone(),
                None,
            ),
        };
        let pass = verdict.as_str() == case.expect
            && class.map(ErrorClass::as_str) == case.class.as_deref()
            && (case.error.is_none() || kind == case.error.as_deref())
            && (case.expect != "valid" || case.digest.is_none() || digest == case.digest);
        results.push(VectorResult {
            file: case.file.clone(),
            description: case.description.clone(),
            expect: case.expect.clone(),
            expect_class: case.class.clone(),
            got: verdict,
            got_class: class,
            expect_error: case.error.clone(),
            got_error: kind,
            detail,
            pass,
        });
    }
    Ok(results)
}
