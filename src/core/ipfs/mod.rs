//! IPFS: content identifiers computed offline exactly as `ipfs add` computes them, a client for
//! the Kubo RPC API, and a local content-addressed folder.

pub mod add;
pub mod api;
pub mod cid;
pub mod local;
pub mod unixfs;

pub use add::{AddError, Entry, add_path};
pub use cid::{Cid, CidVersion, Codec};
