//! `gym keygen` and `gym key show`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::out::{self, Ctx};
use crate::core::keys::{Identity, PublicIdentity};

/// Arguments of `gym keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600).
    #[arg(short, long, value_name = "KEY.pem")]
    pub output: PathBuf,
    /// Also create an ML-DSA-87 key pair for hybrid (post-quantum) signatures.
    #[arg(long)]
    pub pq: bool,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
    /// Print the public identity as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Show the public identity of a key file: worker id and public keys.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A key file written by `gym keygen`.
    #[arg(value_name = "KEY.pem")]
    pub key: PathBuf,
    /// Print JSON (format `gym-key/1`): worker_id, ed25519, ed25519_pem, ml_dsa_87.
    #[arg(long)]
    pub json: bool,
    /// Print only the Ed25519 public key as SPKI PEM (as `openssl pkey -pubout` does).
    #[arg(long, conflicts_with = "json")]
    pub pem: bool,
}

/// The documented JSON shape of a public identity.
#[derive(Debug, serde::Serialize)]
pub struct KeyJson {
    pub format: &'static str,
    pub worker_id: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub ed25519: String,
    pub ed25519_pem: String,
    /// Base64 of the 2592-byte ML-DSA-87 public key, or null.
    pub ml_dsa_87: Option<String>,
}

pub fn key_json(p: &PublicIdentity) -> KeyJson {
    KeyJson {
        format: "gym-key/1",
        worker_id: p.worker_id(),
        ed25519: p.ed25519_base64(),
        ed25519_pem: p.ed25519_pem(),
        ml_dsa_87: p.ml_dsa_base64(),
    }
}

fn print_identity(p: &PublicIdentity, json: bool) -> anyhow::Result<()> {
    if json {
        // One line, so that `gym key show --json k.pem >> trusted.jsonl` builds a trust file.
        out::println(&serde_json::to_string(&key_json(p))?)?;
        return Ok(());
    }
    let mut s = format!(
        "worker id:  {}\ned25519:    {}\n",
        p.worker_id(),
        p.ed25519_base64()
    );
    match p.ml_dsa_bytes() {
        Some(b) => s.push_str(&format!(
            "ml-dsa-87:  {} bytes, sha3-256 {}\n",
            b.len(),
            hex::encode(crate::core::hash::sha3_256(&b))
        )),
        None => s.push_str("ml-dsa-87:  none\n"),
    }
    out::print(&s)?;
    Ok(())
}

pub fn keygen(ctx: &Ctx, a: KeygenArgs) -> anyhow::Result<()> {
    let id = Identity::generate(a.pq);
    id.save(&a.output, a.force)
        .with_context(|| format!("creating key {}", a.output.display()))?;
    ctx.note(format!(
        "wrote {} key to {}",
        if a.pq {
            "Ed25519 + ML-DSA-87"
        } else {
            "Ed25519"
        },
        a.output.display()
    ));
    print_identity(&id.public(), a.json)
}

pub fn run(_ctx: &Ctx, c: KeyCommand) -> anyhow::Result<()> {
    match c {
        KeyCommand::Show(a) => {
            let id = Identity::load(&a.key)?;
            if a.pem {
                out::print(&id.public().ed25519_pem())?;
                return Ok(());
            }
            print_identity(&id.public(), a.json)
        }
    }
}
