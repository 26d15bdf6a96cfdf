//! UnixFS files and directories in dag-pb, built exactly as `ipfs add` (kubo defaults) builds
//! them, streaming in bounded memory.
//!
//! Layout (protobuf, proto2 field order as go-merkledag and @ipld/dag-pb write it):
//! - `PBNode`: repeated `Links` (field 2) first, then `Data` (field 1, bytes).
//! - `PBLink`: `Hash` (1, CID bytes), `Name` (2, string; written even when empty), `Tsize` (3,
//!   varint: the serialized size of the linked block plus everything below it).
//! - UnixFS `Data`: `Type` (1: 1 = directory, 2 = file), `Data` (2, only on leaves, only when
//!   non-empty), `filesize` (3, files only, written even when 0), `blocksizes` (4, repeated,
//!   not packed: the file bytes under each link).
//!
//! Files are cut into chunks of [`CHUNK_SIZE`] bytes. With CIDv0 a chunk becomes a dag-pb file
//! leaf; with CIDv1 it is a raw block (kubo's `--cid-version 1` implies `--raw-leaves`). A file of
//! one chunk is that leaf; a longer one is a balanced tree of internal file nodes with at most
//! [`MAX_LINKS`] links each, filled left to right (every subtree but the last is complete; a
//! last subtree holding a single node is still wrapped in a parent).

use std::io::{self, Read};

use super::cid::{Cid, CidVersion, Codec};

/// Bytes per leaf, kubo's default chunker `size-262144`.
pub const CHUNK_SIZE: usize = 262_144;
/// Links per internal node of the balanced layout.
pub const MAX_LINKS: usize = 174;

const UNIXFS_DIRECTORY: u64 = 1;
const UNIXFS_FILE: u64 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_uint(out: &mut Vec<u8>, field: u64, v: u64) {
    put_key(out, field, 0);
    put_varint(out, v);
}

/// The UnixFS `Data` message of a file node.
fn unixfs_file(data: &[u8], filesize: u64, blocksizes: &[u64]) -> Vec<u8> {
    let mut d = Vec::with_capacity(data.len() + 16 + blocksizes.len() * 4);
    put_uint(&mut d, 1, UNIXFS_FILE);
    if !data.is_empty() {
        put_bytes(&mut d, 2, data);
    }
    put_uint(&mut d, 3, filesize);
    for b in blocksizes {
        put_uint(&mut d, 4, *b);
    }
    d
}

/// A dag-pb link.
#[derive(Debug, Clone)]
pub struct Link {
    pub cid: Cid,
    pub name: String,
    /// Serialized size of the linked block and all blocks below it.
    pub tsize: u64,
}

/// A dag-pb node: links first, then data.
fn pb_node(links: &[Link], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + links.len() * 48 + 8);
    for l in links {
        let mut lb = Vec::with_capacity(48 + l.name.len());
        put_bytes(&mut lb, 1, &l.cid.to_bytes());
        put_bytes(&mut lb, 2, l.name.as_bytes());
        put_uint(&mut lb, 3, l.tsize);
        put_bytes(&mut out, 2, &lb);
    }
    put_bytes(&mut out, 1, data);
    out
}

/// A block just built: its CID and bytes. Handed to a [`BlockSink`] (an on-disk block store,
/// a test) or dropped.
pub trait BlockSink {
    fn block(&mut self, cid: &Cid, bytes: &[u8]) -> io::Result<()>;
}

/// Discards blocks (computing a CID only).
pub struct NoBlocks;

impl BlockSink for NoBlocks {
    fn block(&mut self, _: &Cid, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// The result of importing one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNode {
    pub cid: Cid,
    /// File bytes.
    pub size: u64,
    /// Serialized size of all blocks of the file (the `Tsize` a parent directory gives it).
    pub dag_size: u64,
}

/// One entry of a level of the balanced tree.
#[derive(Debug, Clone, Copy)]
struct Child {
    cid: Cid,
    file_size: u64,
    dag_size: u64,
}

/// Streaming balanced-tree builder: feed it chunks, then finish it.
pub struct FileBuilder {
    version: CidVersion,
    /// `levels[0]` holds leaves, `levels[k]` internal nodes of height k.
    levels: Vec<Vec<Child>>,
}

impl FileBuilder {
    pub fn new(version: CidVersion) -> Self {
        FileBuilder {
            version,
            levels: vec![Vec::new()],
        }
    }

    fn leaf(&self, chunk: &[u8], sink: &mut dyn BlockSink) -> io::Result<Child> {
        let (cid, bytes_len) = match self.version {
            CidVersion::V1 => {
                let cid = Cid::of_block(CidVersion::V1, Codec::Raw, chunk);
                sink.block(&cid, chunk)?;
                (cid, chunk.len())
            }
            CidVersion::V0 => {
                let block = pb_node(&[], &unixfs_file(chunk, chunk.len() as u64, &[]));
                let cid = Cid::of_block(CidVersion::V0, Codec::DagPb, &block);
                sink.block(&cid, &block)?;
                (cid, block.len())
            }
        };
        Ok(Child {
            cid,
            file_size: chunk.len() as u64,
            dag_size: bytes_len as u64,
        })
    }

    fn internal(&self, children: &[Child], sink: &mut dyn BlockSink) -> io::Result<Child> {
        let file_size: u64 = children.iter().map(|c| c.file_size).sum();
        let sizes: Vec<u64> = children.iter().map(|c| c.file_size).collect();
        let links: Vec<Link> = children
            .iter()
            .map(|c| Link {
                cid: c.cid,
                name: String::new(),
                tsize: c.dag_size,
            })
            .collect();
        let block = pb_node(&links, &unixfs_file(&[], file_size, &sizes));
        let cid = Cid::of_block(self.version, Codec::DagPb, &block);
        sink.block(&cid, &block)?;
        let below: u64 = children.iter().map(|c| c.dag_size).sum();
        Ok(Child {
            cid,
            file_size,
            dag_size: block.len() as u64 + below,
        })
    }

    /// Adds `child` at `level`, first closing that level into a parent when it is full.
    fn push(&mut self, level: usize, child: Child, sink: &mut dyn BlockSink) -> io::Result<()> {
        if self.levels[level].len() == MAX_LINKS {
            let full = std::mem::take(&mut self.levels[level]);
            let parent = self.internal(&full, sink)?;
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.push(level + 1, parent, sink)?;
        }
        self.levels[level].push(child);
        Ok(())
    }

    /// Adds one chunk (at most [`CHUNK_SIZE`] bytes; only the last may be shorter).
    pub fn chunk(&mut self, chunk: &[u8], sink: &mut dyn BlockSink) -> io::Result<()> {
        let leaf = self.leaf(chunk, sink)?;
        self.push(0, leaf, sink)
    }

    /// Closes every level and returns the root.
    pub fn finish(mut self, sink: &mut dyn BlockSink) -> io::Result<FileNode> {
        if self.levels[0].is_empty() {
            // The empty file is one leaf with no data.
            let leaf = self.leaf(&[], sink)?;
            return Ok(FileNode {
                cid: leaf.cid,
                size: 0,
                dag_size: leaf.dag_size,
            });
        }
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            let items = std::mem::take(&mut self.levels[level]);
            if top && items.len() == 1 {
                let r = items[0];
                return Ok(FileNode {
                    cid: r.cid,
                    size: r.file_size,
                    dag_size: r.dag_size,
                });
            }
            let parent = self.internal(&items, sink)?;
            if top {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Imports a file from a reader. Memory use is one chunk plus at most [`MAX_LINKS`] links per
/// tree level. `progress` is told the bytes consumed after each chunk.
pub fn import_file(
    mut r: impl Read,
    version: CidVersion,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
) -> io::Result<FileNode> {
    let mut b = FileBuilder::new(version);
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        let n = fill(&mut r, &mut buf)?;
        if n == 0 {
            break;
        }
        b.chunk(&buf[..n], sink)?;
        progress(n as u64);
        if n < CHUNK_SIZE {
            break;
        }
    }
    b.finish(sink)
}

/// The CID of `bytes` as a file.
pub fn file_cid(bytes: &[u8], version: CidVersion) -> Cid {
    import_file(bytes, version, &mut NoBlocks, &mut |_| {})
        .expect("reading from memory cannot fail")
        .cid
}

/// A directory node over `entries` (name, node); names are sorted bytewise as dag-pb requires.
/// Returns (CID, cumulative dag size). Directories large enough for kubo to shard them (HAMT)
/// are not produced here; the caller limits the number of entries.
pub fn directory(
    version: CidVersion,
    entries: &[(String, Cid, u64)],
    sink: &mut dyn BlockSink,
) -> io::Result<(Cid, u64)> {
    let mut links: Vec<Link> = entries
        .iter()
        .map(|(n, c, t)| Link {
            cid: *c,
            name: n.clone(),
            tsize: *t,
        })
        .collect();
    links.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut data = Vec::new();
    put_uint(&mut data, 1, UNIXFS_DIRECTORY);
    let block = pb_node(&links, &data);
    let cid = Cid::of_block(version, Codec::DagPb, &block);
    sink.block(&cid, &block)?;
    let below: u64 = links.iter().map(|l| l.tsize).sum();
    Ok((cid, block.len() as u64 + below))
}

/// Estimated serialized size of a directory's links, as kubo measures it to decide on HAMT
/// sharding (name + binary CID per link). Kubo shards above 256 KiB.
pub fn directory_links_estimate(entries: &[(String, Cid, u64)]) -> usize {
    entries
        .iter()
        .map(|(n, c, _)| n.len() + c.to_bytes().len())
        .sum()
}

/// Kubo's `HAMTShardingSize` threshold.
pub const HAMT_THRESHOLD: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_small_cids() {
        assert_eq!(
            file_cid(b"hello world\n", CidVersion::V0).to_string(),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
        );
        assert_eq!(
            file_cid(b"hello world\n", CidVersion::V1).to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
        assert_eq!(
            file_cid(b"", CidVersion::V0).to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
    }

    #[test]
    fn empty_directory() {
        let (cid, _) = directory(CidVersion::V0, &[], &mut NoBlocks).unwrap();
        assert_eq!(
            cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
    }

    /// Counts blocks per height to check the tree shape without a reference.
    struct Count(Vec<usize>);
    impl BlockSink for Count {
        fn block(&mut self, _: &Cid, _: &[u8]) -> io::Result<()> {
            self.0.push(1);
            Ok(())
        }
    }

    /// Records the size of every block.
    struct Sizes(u64, usize);
    impl BlockSink for Sizes {
        fn block(&mut self, _: &Cid, b: &[u8]) -> io::Result<()> {
            self.0 += b.len() as u64;
            self.1 += 1;
            Ok(())
        }
    }

    /// Hands out at most `step` bytes per read, to exercise short reads.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn short_reads_and_block_sizes(len in 0usize..(CHUNK_SIZE * 3 + 7), step in 1usize..70_000, v1: bool) {
            let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
            let version = if v1 { CidVersion::V1 } else { CidVersion::V0 };
            let mut sizes = Sizes(0, 0);
            let whole = import_file(&data[..], version, &mut sizes, &mut |_| {}).unwrap();
            let dribbled = import_file(Dribble(&data, step), version, &mut NoBlocks, &mut |_| {}).unwrap();
            proptest::prop_assert_eq!(whole, dribbled);
            // The root's cumulative size is every block's bytes, as IPFS reports it.
            proptest::prop_assert_eq!(whole.dag_size, sizes.0);
            proptest::prop_assert_eq!(whole.size, len as u64);
            let chunks = len.div_ceil(CHUNK_SIZE).max(1);
            proptest::prop_assert_eq!(sizes.1, if chunks == 1 { 1 } else { chunks + 1 });
        }
    }

    #[test]
    fn balanced_shape() {
        // 175 chunks: 175 leaves, a full node, a one-link node, a root.
        let data = vec![7u8; CHUNK_SIZE * 175];
        let mut c = Count(Vec::new());
        let n = import_file(&data[..], CidVersion::V1, &mut c, &mut |_| {}).unwrap();
        assert_eq!(c.0.len(), 175 + 3);
        assert_eq!(n.size, data.len() as u64);
        // 174 chunks: leaves and one root.
        let mut c = Count(Vec::new());
        import_file(
            &data[..CHUNK_SIZE * 174],
            CidVersion::V1,
            &mut c,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(c.0.len(), 175);
    }
}
