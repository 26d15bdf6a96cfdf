//! `gym reward estimate | claim | verify-claim | economics`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use num_rational::BigRational;
use num_traits::ToPrimitive;
use serde_json::json;

use super::Failure;
use super::out::{self, Ctx};
use crate::core::atomic;
use crate::core::error::ErrorClass;
use crate::core::keys::Identity;
use crate::core::reward::alloc::PoolKind;
use crate::core::reward::contrib::{self, Mode};
use crate::core::reward::epoch::{self, EpochOptions};
use crate::core::reward::{Category, Economics, Estimate, Inputs, Params, amount, claim, estimate};

pub const ESTIMATE_FORMAT: &str = "gym-reward-estimate/1";
pub const VERIFY_FORMAT: &str = "gym-reward-claim-verify/1";

#[derive(Debug, Subcommand)]
pub enum RewardCommand {
    /// Estimate an epoch's rewards from an epoch folder or a contributions file.
    Estimate(EstimateArgs),
    /// Sign a reward claim binding your signed delta (digest, CID) to its compute record.
    Claim(ClaimArgs),
    /// Verify a reward claim's signature, and optionally that it matches a delta.
    VerifyClaim(VerifyClaimArgs),
    /// Print the economics in effect as TOML (the defaults, or FILE with defaults filled in).
    Economics(EconomicsArgs),
}

/// Arguments of `gym reward estimate`.
#[derive(Debug, Args)]
#[command(
    after_help = "The formula, the file formats and the rounding rules are in docs/rewards.md."
)]
pub struct EstimateArgs {
    /// An epoch folder (nodes.json or nodes.csv, deltas/, eval/, ring/) or a contributions file
    /// (.json, or .csv) for what-if estimates.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Economics file (TOML). Missing fields take the defaults shown by `gym reward economics`.
    #[arg(long, value_name = "FILE.toml")]
    pub economics: Option<PathBuf>,
    /// Epoch to estimate (0-based; default: the input's "epoch" field, else 0 for a contributions
    /// file).
    #[arg(long, value_name = "N")]
    pub epoch: Option<u64>,
    /// Model size in parameters. Claimed FLOPs are capped at 6 x params x tokens. Required for an
    /// epoch folder; applies to contributions records that give "tokens".
    #[arg(long, value_name = "N")]
    pub model_params: Option<u64>,
    /// Print JSON (format `gym-reward-estimate/1`).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV, one line per node.
    #[arg(long)]
    pub csv: bool,
}

/// Arguments of `gym reward claim`.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// Your signed delta.
    #[arg(long, value_name = "FILE.delta")]
    pub delta: PathBuf,
    /// The IPFS CID the delta was published under (checked for syntax, not recomputed).
    #[arg(long, value_name = "CID")]
    pub cid: Option<String>,
    /// The key that signed the delta.
    #[arg(long, value_name = "KEY.pem")]
    pub key: PathBuf,
    /// Where to write the claim (JSON, format `gym-reward-claim/1`).
    #[arg(short, long, value_name = "claim.json")]
    pub output: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `gym reward verify-claim`.
#[derive(Debug, Args)]
pub struct VerifyClaimArgs {
    #[arg(value_name = "claim.json")]
    pub claim: PathBuf,
    /// Also check that this delta is the one claimed: digest, file hash, signer, compute record.
    #[arg(long, value_name = "FILE.delta")]
    pub delta: Option<PathBuf>,
    /// Print JSON (format `gym-reward-claim-verify/1`).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gym reward economics`.
#[derive(Debug, Args)]
pub struct EconomicsArgs {
    /// An economics file to check and print with its defaults filled in.
    #[arg(value_name = "FILE.toml")]
    pub economics: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, c: RewardCommand) -> anyhow::Result<()> {
    match c {
        RewardCommand::Estimate(a) => estimate_cmd(ctx, a),
        RewardCommand::Claim(a) => claim_cmd(ctx, a),
        RewardCommand::VerifyClaim(a) => verify_claim_cmd(a),
        RewardCommand::Economics(a) => economics_cmd(a),
    }
}

fn load_economics(path: Option<&Path>) -> anyhow::Result<(Economics, Params)> {
    let (e, origin) = match path {
        Some(p) => (Economics::load(p)?, p.display().to_string()),
        None => (Economics::default(), "defaults".to_string()),
    };
    let params = e.params(&origin)?;
    Ok((e, params))
}

fn economics_cmd(a: EconomicsArgs) -> anyhow::Result<()> {
    let (e, _) = load_economics(a.economics.as_deref())?;
    out::print(&e.to_toml())?;
    Ok(())
}

fn estimate_cmd(ctx: &Ctx, a: EstimateArgs) -> anyhow::Result<()> {
    let (_, p) = load_economics(a.economics.as_deref())?;
    let inputs: Inputs = if a.input.is_dir() {
        let Some(model_params) = a.model_params else {
            return Err(Failure::new(
                ErrorClass::Usage,
                "--model-params is required with an epoch folder: claimed FLOPs are capped at 6 x params x tokens",
            )
            .into());
        };
        let opts = EpochOptions {
            epoch: a.epoch,
            model_params: u128::from(model_params),
        };
        epoch::load(&a.input, &p, &opts)?
    } else {
        contrib::load(
            &a.input,
            &p,
            Mode::Contributions,
            a.model_params.map(u128::from),
        )?
    };
    let epoch_no = a.epoch.or(inputs.epoch).unwrap_or(0);
    let est = estimate(&p, epoch_no, &inputs.nodes)?;
    if a.json {
        return out::json(&estimate_json(&p, &est, &inputs));
    }
    for n in &inputs.notes {
        ctx.note(format!("note: {n}"));
    }
    for r in &inputs.rejected {
        ctx.note(format!("skipped {}: {}", r.file, r.reason));
    }
    if a.csv {
        out::print(&estimate_csv(&p, &est))?;
    } else {
        out::print(&estimate_text(&p, &est))?;
    }
    Ok(())
}

fn share_f64(r: &BigRational) -> f64 {
    r.to_f64().unwrap_or(0.0)
}

fn percent(r: &BigRational) -> String {
    format!("{:.2}%", share_f64(r) * 100.0)
}

fn estimate_json(p: &Params, e: &Estimate, inputs: &Inputs) -> serde_json::Value {
    let amt = |v: u128| amount::format(v, p.decimals);
    let nodes: Vec<serde_json::Value> = e
        .nodes
        .iter()
        .map(|n| {
            let shares = n.category_shares.as_ref().map(|s| {
                json!({"compute": share_f64(&s[0]), "quality": share_f64(&s[1]), "network": share_f64(&s[2])})
            });
            json!({
                "node": n.node,
                "role": n.role.name(),
                "stake": amt(n.stake),
                "eligible": n.eligible,
                "reasons": n.reasons,
                "pool": match n.pool { PoolKind::Mining => "mining", PoolKind::Staking => "staking" },
                "shares": shares,
                "score": share_f64(&n.score),
                "reward": amt(n.reward),
                "reward_base_units": n.reward.to_string(),
            })
        })
        .collect();
    let categories: serde_json::Map<String, serde_json::Value> = Category::ALL
        .iter()
        .map(|c| {
            let v = json!({"percent": p.categories[c.index()], "active": e.active_categories[c.index()]});
            (c.name().to_string(), v)
        })
        .collect();
    let [dm, ds, dd, dc, dr] = p.distribution;
    json!({
        "format": ESTIMATE_FORMAT,
        "epoch": e.epoch,
        "economics": p.source,
        "token": {"symbol": p.symbol, "decimals": p.decimals},
        "emission": amt(e.emission),
        "pools": {
            "mining": {"percent": dm, "amount": amt(e.pools.mining), "paid": amt(e.mining_paid)},
            "staking": {"percent": ds, "amount": amt(e.pools.staking), "paid": amt(e.staking_paid)},
            "development": {"percent": dd, "amount": amt(e.pools.development)},
            "community": {"percent": dc, "amount": amt(e.pools.community)},
            "reserve": {
                "percent": dr,
                "amount": amt(e.pools.reserve),
                "rounding": amt(e.rounding),
                "undistributed": amt(e.undistributed),
                "total": amt(e.reserve_total()),
            },
        },
        "categories": categories,
        "nodes": nodes,
        "totals": {
            "nodes": e.nodes.len(),
            "eligible": e.nodes.iter().filter(|n| n.eligible).count(),
            "stake": amt(e.nodes.iter().map(|n| n.stake).sum()),
            "reward": amt(e.mining_paid + e.staking_paid),
        },
        "notes": inputs.notes,
        "rejected": inputs.rejected,
    })
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn estimate_csv(p: &Params, e: &Estimate) -> String {
    let mut s = String::from(
        "node,role,stake,eligible,compute_share,quality_share,network_share,reward,reasons\n",
    );
    for n in &e.nodes {
        let shares = match &n.category_shares {
            Some(sh) => sh
                .iter()
                .map(|r| format!("{:.6}", share_f64(r)))
                .collect::<Vec<_>>()
                .join(","),
            None => ",,".to_string(),
        };
        s.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            csv_cell(&n.node),
            n.role.name(),
            amount::format(n.stake, p.decimals),
            n.eligible,
            shares,
            amount::format(n.reward, p.decimals),
            csv_cell(&n.reasons.join("; "))
        ));
    }
    s
}

fn estimate_text(p: &Params, e: &Estimate) -> String {
    let amt = |v: u128| amount::format(v, p.decimals);
    let sym = &p.symbol;
    let mut t = out::table(&[
        "node", "role", "stake", "eligible", "compute", "quality", "network", "reward",
    ]);
    for n in &e.nodes {
        let (c, q, w) = match &n.category_shares {
            Some(s) if n.eligible => (percent(&s[0]), percent(&s[1]), percent(&s[2])),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        t.add_row(vec![
            n.node.clone(),
            n.role.name().to_string(),
            amt(n.stake),
            if n.eligible {
                "yes".into()
            } else {
                "no".into()
            },
            c,
            q,
            w,
            amt(n.reward),
        ]);
    }
    let eligible = e.nodes.iter().filter(|n| n.eligible).count();
    let cat_total = |i: usize| {
        if e.active_categories[i] {
            "100.00%".to_string()
        } else {
            "inactive".to_string()
        }
    };
    t.add_row(vec![
        "total".into(),
        format!("{} nodes", e.nodes.len()),
        amt(e.nodes.iter().map(|n| n.stake).sum()),
        format!("{eligible} eligible"),
        cat_total(0),
        cat_total(1),
        cat_total(2),
        amt(e.mining_paid + e.staking_paid),
    ]);
    let mut s = format!(
        "epoch {}: emission {} {sym}\n{t}\n\n",
        e.epoch,
        amt(e.emission)
    );
    let [dm, ds, dd, dc, dr] = p.distribution;
    let mut pools = out::table(&["pool", "share", "amount", "paid"]);
    pools.add_row(vec![
        "mining".into(),
        format!("{dm}%"),
        amt(e.pools.mining),
        amt(e.mining_paid),
    ]);
    pools.add_row(vec![
        "staking".into(),
        format!("{ds}%"),
        amt(e.pools.staking),
        amt(e.staking_paid),
    ]);
    pools.add_row(vec![
        "development".into(),
        format!("{dd}%"),
        amt(e.pools.development),
        amt(e.pools.development),
    ]);
    pools.add_row(vec![
        "community".into(),
        format!("{dc}%"),
        amt(e.pools.community),
        amt(e.pools.community),
    ]);
    pools.add_row(vec![
        "reserve".into(),
        format!("{dr}%"),
        amt(e.pools.reserve),
        format!(
            "{} (+{} rounding, +{} unpaid)",
            amt(e.reserve_total()),
            amt(e.rounding),
            amt(e.undistributed)
        ),
    ]);
    s.push_str(&format!("{pools}\n"));
    let ineligible: Vec<_> = e.nodes.iter().filter(|n| !n.eligible).collect();
    if !ineligible.is_empty() {
        s.push_str("\nineligible:\n");
        for n in ineligible {
            for r in &n.reasons {
                s.push_str(&format!("  {}: {r}\n", n.node));
            }
        }
    }
    s
}

fn claim_cmd(ctx: &Ctx, a: ClaimArgs) -> anyhow::Result<()> {
    atomic::check_writable(&a.output, a.force)?;
    let id = Identity::load(&a.key).with_context(|| format!("loading key {}", a.key.display()))?;
    let c = claim::make(&a.delta, a.cid.as_deref(), &id)?;
    let mut text = serde_json::to_string_pretty(&c)?;
    text.push('\n');
    atomic::write_file(&a.output, text.as_bytes(), a.force, None)?;
    ctx.note(format!(
        "wrote claim by {} for delta {} (epoch {}, seq {}) to {}",
        c.worker_id,
        c.delta.digest,
        c.epoch,
        c.seq,
        a.output.display()
    ));
    Ok(())
}

fn verify_claim_cmd(a: VerifyClaimArgs) -> anyhow::Result<()> {
    let (c, who) = claim::verify(&a.claim)?;
    if let Some(d) = &a.delta {
        claim::check_delta(&c, &a.claim.display().to_string(), d)?;
    }
    if a.json {
        return out::json(&json!({
            "format": VERIFY_FORMAT,
            "valid": true,
            "worker_id": c.worker_id,
            "hybrid": who.ml_dsa_87.is_some(),
            "epoch": c.epoch,
            "seq": c.seq,
            "delta": c.delta,
            "compute": c.compute,
            "created": c.created,
            "delta_checked": a.delta.is_some(),
        }));
    }
    let mut s = format!(
        "ok: claim by {} ({}) for delta {}\n  epoch {}, seq {}, {} tokens, {} FLOPs, {} s on {:?}\n",
        c.worker_id,
        if who.ml_dsa_87.is_some() {
            "Ed25519 + ML-DSA-87"
        } else {
            "Ed25519"
        },
        c.delta.digest,
        c.epoch,
        c.seq,
        c.compute.tokens,
        c.compute.flops,
        c.compute.wall_seconds,
        c.compute.device
    );
    if let Some(cid) = &c.delta.cid {
        s.push_str(&format!("  cid {cid}\n"));
    }
    if let Some(d) = &a.delta {
        s.push_str(&format!("  matches {}\n", d.display()));
    }
    out::print(&s)?;
    Ok(())
}
