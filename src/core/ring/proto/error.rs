//! Why a message was refused, and why a member could not finish.

use crate::core::error::{Classify, ErrorClass};
use crate::core::ring::fixed::FixedError;
use crate::core::ring::wire::WireError;

/// A message that was refused. The machine's state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("undecodable message from member {from}: {error}")]
    Decode { from: usize, error: WireError },
    #[error("member {from} sent a message signed as member {sender}")]
    WrongSender { from: usize, sender: u16 },
    #[error("bad signature on a {kind} message from member {sender}")]
    BadSignature { sender: usize, kind: &'static str },
    #[error("stale {kind} message from member {sender}: view {view}, current view is {current}")]
    Stale {
        sender: usize,
        kind: &'static str,
        view: u32,
        current: u32,
    },
    #[error("member {sender} is not in view {view}")]
    NotInView { sender: usize, view: u32 },
    #[error("replayed {what} from member {sender} in view {view}")]
    Replay {
        sender: usize,
        view: u32,
        what: String,
    },
    #[error("unexpected {what} from member {sender} in view {view}")]
    Unexpected {
        sender: usize,
        view: u32,
        what: String,
    },
}

impl Classify for Refused {
    fn class(&self) -> ErrorClass {
        match self {
            Refused::Decode { .. } => ErrorClass::Malformed,
            Refused::WrongSender { .. } | Refused::BadSignature { .. } => ErrorClass::Signature,
            Refused::NotInView { .. } => ErrorClass::Untrusted,
            Refused::Stale { .. } | Refused::Replay { .. } | Refused::Unexpected { .. } => {
                ErrorClass::Policy
            }
        }
    }
}

/// Why a member could not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RingError {
    #[error("view {view} would have {members} member(s); a ring needs at least 2")]
    TooFew { view: u32, members: usize },
    #[error("excluded from view {view} by the other members")]
    Excluded { view: u32 },
    #[error("members disagree on the tensor layout in view {view}: {members:?} differ from ours")]
    Layout { view: u32, members: Vec<usize> },
    #[error(transparent)]
    Fixed(#[from] FixedError),
    #[error("no progress after {views} view changes")]
    TooManyViews { views: u32 },
    #[error(
        "the ring is hybrid, but the key of member {member} has no ML-DSA-87 half or not the \
         one the ring file lists"
    )]
    MlDsaKey { member: usize },
    /// A group's exact sum enters only a ring fixed at the scale it was summed at.
    #[error(
        "the input is a group's exact sum at scale 2^{input}, but the ring file {}: a sum \
         enters only a ring with the same scale_bits",
        match ring { Some(f) => format!("fixes scale 2^{f}"), None => "fixes no scale".into() }
    )]
    SumScale { input: u32, ring: Option<u32> },
}

impl Classify for RingError {
    fn class(&self) -> ErrorClass {
        match self {
            RingError::Layout { .. } => ErrorClass::Malformed,
            RingError::Fixed(_) => ErrorClass::Malformed,
            RingError::MlDsaKey { .. } => ErrorClass::Untrusted,
            RingError::SumScale { .. } => ErrorClass::Malformed,
            _ => ErrorClass::Ring,
        }
    }
}
