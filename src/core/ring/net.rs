//! The thin tokio driver: a TCP mesh between members, the handshake of [`super::crypto`] on
//! every connection, and a loop that feeds received messages, lost connections and timeouts
//! to the [`Machine`] and sends what it returns. All protocol decisions are in the machine.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::RingSpec;
use super::crypto::{self, HandshakeError, Initiator, Opener, Responder, Sealer, Session};
use super::proto::{Checked, Input, Machine, Outcome, Refused, RingError, Verifier};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::Identity;

/// Largest frame accepted (evidence can carry a whole segment).
pub const MAX_FRAME: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum RingNetError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("connecting to member {member} at {address}: {source}")]
    Connect {
        member: usize,
        address: String,
        source: std::io::Error,
    },
    #[error("handshake with member {member}: {source}")]
    Handshake {
        member: usize,
        source: HandshakeError,
    },
    #[error("refused a connection from {address}: {source}")]
    Refused {
        address: String,
        source: HandshakeError,
    },
    #[error("timed out {what}")]
    Timeout { what: String },
    #[error("setting up the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Ring(#[from] RingError),
}

impl Classify for RingNetError {
    fn class(&self) -> ErrorClass {
        match self {
            RingNetError::Listen { .. }
            | RingNetError::Connect { .. }
            | RingNetError::Timeout { .. } => ErrorClass::Network,
            RingNetError::Handshake { source, .. } | RingNetError::Refused { source, .. } => {
                source.class()
            }
            RingNetError::Runtime(_) => ErrorClass::Other,
            RingNetError::Ring(e) => e.class(),
        }
    }
}

/// How long to wait.
#[derive(Debug, Clone, Copy)]
pub struct JoinOptions {
    /// Per step: with no progress for this long, the member starts a view change.
    pub step_timeout: Duration,
    /// For all members to connect at the start.
    pub connect_timeout: Duration,
    /// Where to listen instead of this member's address in the ring file (the others still
    /// dial that address: behind a port forward, a NAT or a proxy).
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            step_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(60),
            listen: None,
        }
    }
}

/// What the driver reports as it goes (printed by the command layer).
pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

pub(crate) enum Event {
    /// A message from this member, already decrypted, decoded and verified (or refused) on the
    /// connection's reader task.
    Msg(Box<Result<Checked, Refused>>),
    Lost(usize),
}

async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    read_frame_max(s, MAX_FRAME).await
}

/// Reads a frame of at most `max` bytes; a longer length prefix is refused before anything
/// is allocated.
async fn read_frame_max(
    s: &mut (impl AsyncReadExt + Unpin),
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32_le().await? as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {max}"),
        ));
    }
    // Read into spare capacity: no zeroing of a buffer that is about to be overwritten.
    let mut b = Vec::with_capacity(len + 16);
    (&mut *s).take(len as u64).read_to_end(&mut b).await?;
    if b.len() != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(b)
}

/// Largest handshake answer read from a peer that has not authenticated: an `Accept` or a
/// `Finish` of a hybrid ring, or a `Reject` with its reason.
const MAX_HANDSHAKE_FRAME: usize = 16 << 10;

/// Limits on connections that have not authenticated yet (docs/ring-protocol.md,
/// "Pre-authentication limits"): what a stranger who can reach the port can make a member
/// hold.
#[derive(Debug, Clone, Copy)]
pub struct PreAuthLimits {
    /// Handshakes in progress at once, in all. Connections beyond are closed unread.
    pub max_pending: usize,
    /// Handshakes in progress at once from one source address.
    pub max_pending_per_source: usize,
    /// A handshake not complete after this long is dropped.
    pub handshake_timeout: Duration,
    /// Refused connections reported one by one (and kept as errors); the rest are counted.
    pub max_reported: usize,
}

impl Default for PreAuthLimits {
    fn default() -> Self {
        PreAuthLimits {
            max_pending: 256,
            max_pending_per_source: 16,
            handshake_timeout: Duration::from_secs(10),
            max_reported: 16,
        }
    }
}

/// The acceptor's admission count of unauthenticated connections.
struct Gate {
    limits: PreAuthLimits,
    pending: std::sync::Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted handshake; leaving it frees the slot.
struct Admitted {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl Gate {
    fn admit(gate: &Arc<Gate>, source: IpAddr) -> Option<Admitted> {
        let mut p = gate.pending.lock().ok()?;
        let (total, by_source) = &mut *p;
        let from = by_source.entry(source).or_default();
        if *total >= gate.limits.max_pending || *from >= gate.limits.max_pending_per_source {
            return None;
        }
        *from += 1;
        *total += 1;
        Some(Admitted {
            gate: gate.clone(),
            source,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut p) = self.gate.pending.lock() {
            let (total, by_source) = &mut *p;
            *total -= 1;
            if let Some(n) = by_source.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    by_source.remove(&self.source);
                }
            }
        }
    }
}

/// Connections the acceptor turned away: the first few as errors, the rest counted.
#[derive(Default)]
struct Refusals {
    errors: Vec<RingNetError>,
    /// Refused by the handshake (not a member, a bad signature, …), in all.
    refused: u64,
    /// Dropped unanswered: over the limits, too slow, or not speaking the protocol.
    dropped: u64,
}

/// Writes `u32 length ‖ bytes` with vectored writes: a large frame and its length prefix go to
/// the socket in one system call (and one TCP segment train) instead of a 4-byte write first.
async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), b: &[u8]) -> std::io::Result<()> {
    use std::io::IoSlice;
    let len = (b.len() as u32).to_le_bytes();
    let mut bufs = [IoSlice::new(&len), IoSlice::new(b)];
    let mut rest = &mut bufs[..];
    // Skip empty slices so that a write of 0 bytes means the peer is gone.
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = s.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Dials member `peer` as member `me` and runs the initiator's handshake. A connection the
/// peer closes before answering (it was over its pre-authentication limits, or not up yet) is
/// dialed again until `deadline`.
pub async fn connect(
    ring: Arc<RingSpec>,
    me: usize,
    id: Arc<Identity>,
    peer: usize,
    deadline: Instant,
) -> Result<(TcpStream, Session), RingNetError> {
    let address = ring.members[peer].address.clone();
    let connect_error = |source| RingNetError::Connect {
        member: peer,
        address: address.clone(),
        source,
    };
    loop {
        let mut stream = dial(&address, peer, deadline).await?;
        let hs = async {
            let entropy = crypto::random::<96>();
            let (ini, hello) = Initiator::start(ring.clone(), me, id.clone(), peer, &entropy);
            write_frame(&mut stream, &hello).await?;
            let accept = read_frame_max(&mut stream, MAX_HANDSHAKE_FRAME).await?;
            Ok::<_, std::io::Error>((ini, accept))
        };
        let (ini, accept) = match tokio::time::timeout_at(deadline, hs).await {
            Err(_) => {
                return Err(RingNetError::Timeout {
                    what: format!("in the handshake with member {peer}"),
                });
            }
            Ok(Err(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Ok(Err(source)) => return Err(connect_error(source)),
            Ok(Ok(answer)) => answer,
        };
        let (fin, session) = ini
            .on_accept(&accept)
            .map_err(|source| RingNetError::Handshake {
                member: peer,
                source,
            })?;
        write_frame(&mut stream, &fin)
            .await
            .map_err(connect_error)?;
        return Ok((stream, session));
    }
}

/// A TCP connection to `address`, retried until `deadline`.
async fn dial(address: &str, peer: usize, deadline: Instant) -> Result<TcpStream, RingNetError> {
    loop {
        match TcpStream::connect(address).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(RingNetError::Connect {
                    member: peer,
                    address: address.to_string(),
                    source: e,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Answers one incoming connection. Refused peers get a reject frame and are closed. Nothing
/// larger than a `Hello` is read before the peer proved it holds a member's key: a length
/// prefix other than the `Hello`'s closes the connection unread.
async fn answer(
    ring: Arc<RingSpec>,
    me: usize,
    id: Arc<Identity>,
    mut stream: TcpStream,
) -> Result<(TcpStream, Session), Option<HandshakeError>> {
    let _ = stream.set_nodelay(true);
    let hello = read_frame_max(&mut stream, crypto::HELLO_LEN)
        .await
        .map_err(|_| None)?;
    let entropy = crypto::random::<64>();
    match Responder::on_hello(ring, me, &id, &hello, &entropy) {
        Ok((resp, accept)) => {
            write_frame(&mut stream, &accept).await.map_err(|_| None)?;
            let fin = read_frame_max(&mut stream, MAX_HANDSHAKE_FRAME)
                .await
                .map_err(|_| None)?;
            match resp.on_finish(&fin) {
                Ok(s) => Ok((stream, s)),
                Err(e) => {
                    let _ = write_frame(&mut stream, &crypto::reject_frame(&e)).await;
                    Err(Some(e))
                }
            }
        }
        Err(e) => {
            let _ = write_frame(&mut stream, &crypto::reject_frame(&e)).await;
            Err(Some(e))
        }
    }
}

/// Accepts connections for the whole round: members' handshakes go to `members`; everyone
/// else is refused with a reason, within the [`PreAuthLimits`].
fn spawn_acceptor(
    listener: TcpListener,
    ring: Arc<RingSpec>,
    me: usize,
    id: Arc<Identity>,
    members: mpsc::UnboundedSender<Option<(TcpStream, Session)>>,
    progress: Progress,
    refusals: Arc<std::sync::Mutex<Refusals>>,
) -> tokio::task::JoinHandle<()> {
    let limits = PreAuthLimits::default();
    let gate = Arc::new(Gate {
        limits,
        pending: Default::default(),
    });
    tokio::spawn(async move {
        while let Ok((s, addr)) = listener.accept().await {
            let Some(admitted) = Gate::admit(&gate, addr.ip()) else {
                // Over the limits: closed unread.
                if let Ok(mut r) = refusals.lock() {
                    r.dropped += 1;
                }
                continue;
            };
            let (ring, id, tx) = (ring.clone(), id.clone(), members.clone());
            let (progress, refusals) = (progress.clone(), refusals.clone());
            tokio::spawn(async move {
                let hs = tokio::time::timeout(limits.handshake_timeout, answer(ring, me, id, s));
                let r = hs.await;
                drop(admitted);
                match r {
                    Ok(Ok(c)) => {
                        let _ = tx.send(Some(c));
                    }
                    Ok(Err(Some(e))) => {
                        let Ok(mut r) = refusals.lock() else { return };
                        r.refused += 1;
                        if r.errors.len() < limits.max_reported {
                            progress(format!("refused a connection from {addr}: {e}"));
                            r.errors.push(RingNetError::Refused {
                                address: addr.to_string(),
                                source: e,
                            });
                        }
                    }
                    _ => {
                        if let Ok(mut r) = refusals.lock() {
                            r.dropped += 1;
                        }
                    }
                }
            });
        }
    })
}

pub(crate) fn spawn_connection(
    stream: TcpStream,
    session: Session,
    verifier: Verifier,
    events: mpsc::UnboundedSender<Event>,
) -> (
    mpsc::UnboundedSender<Arc<Vec<u8>>>,
    tokio::task::JoinHandle<()>,
) {
    let peer = session.peer;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Vec<u8>>>();
    let mut open: Opener = session.recv;
    let mut seal: Sealer = session.send;
    tokio::spawn(async move {
        loop {
            let mut b = match read_frame(&mut rd).await {
                Ok(b) => b,
                Err(_) => break,
            };
            if open.open(&mut b).is_err() {
                break;
            }
            // Decoding, the signature and the payload digest are checked here, in parallel
            // with the machine (and with the other connections). A data message's payload
            // stays in the frame, which becomes the frame the machine forwards.
            let checked = verifier.check_frame(peer, b);
            if events.send(Event::Msg(Box::new(checked))).is_err() {
                break;
            }
        }
        let _ = events.send(Event::Lost(peer));
    });
    let writer = tokio::spawn(async move {
        // Small frames (control messages, length prefixes) are batched; a data frame larger
        // than the buffer goes to the socket directly instead of being copied into it.
        let mut w = tokio::io::BufWriter::with_capacity(1 << 16, &mut wr);
        while let Some(m) = rx.recv().await {
            // A message sent to one member is ours alone: seal it in place (the encoder left
            // room for the tag). A broadcast copy is cloned.
            let mut b = Arc::try_unwrap(m).unwrap_or_else(|m| {
                let mut b = Vec::with_capacity(m.len() + 16);
                b.extend_from_slice(&m);
                b
            });
            if seal.seal(&mut b).is_err() || write_frame(&mut w, &b).await.is_err() {
                return;
            }
            if rx.is_empty() && w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.flush().await;
        let _ = wr.shutdown().await;
    });
    (tx, writer)
}

/// A finished all-reduce.
#[derive(Debug)]
pub struct Joined {
    pub outcome: Outcome,
    /// From the first data message (all commits in) to the agreed result, every view included.
    pub reduced: Duration,
}

type Sender = mpsc::UnboundedSender<Arc<Vec<u8>>>;

/// The authenticated connections of one member: a sender per peer, the writer tasks, the
/// event stream of every reader, and the acceptor with what it refused.
struct Links {
    senders: HashMap<usize, Sender>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    events: mpsc::UnboundedReceiver<Event>,
    acceptor: tokio::task::JoinHandle<()>,
    refusals: Arc<std::sync::Mutex<Refusals>>,
}

/// Runs one all-reduce as member `me` and returns the agreed outcome.
pub async fn join(
    ring: Arc<RingSpec>,
    me: usize,
    id: Arc<Identity>,
    input: Arc<Input>,
    opts: JoinOptions,
    progress: Progress,
) -> Result<Joined, RingNetError> {
    super::proto::check_sum_input(&ring, &input)?;
    let mut links = connect_all(&ring, me, &id, &opts, &progress).await?;
    let mut machine = Machine::new(ring.clone(), me, id.clone(), input, *crypto::random::<32>())?;
    dispatch(machine.start(), &links.senders);
    for peer in 0..ring.len() {
        if peer != me && !links.senders.contains_key(&peer) {
            dispatch(machine.peer_lost(peer), &links.senders);
        }
    }
    let reducing = drive(&mut machine, &mut links, &ring, &opts, &progress).await;
    let reduced = reducing.map(|t| t.elapsed()).unwrap_or_default();
    close(links, &opts, &progress).await;
    match machine.take_outcome() {
        Some(Ok(outcome)) => Ok(Joined { outcome, reduced }),
        Some(Err(e)) => Err(e.into()),
        None => unreachable!("finished"),
    }
}

/// Binds the member's address, accepts the lower members and dials the higher ones until
/// every peer is connected, failed, or the connect timeout passes.
async fn connect_all(
    ring: &Arc<RingSpec>,
    me: usize,
    id: &Arc<Identity>,
    opts: &JoinOptions,
    progress: &Progress,
) -> Result<Links, RingNetError> {
    let n = ring.len();
    let address = match opts.listen {
        Some(a) => a.to_string(),
        None => ring.members[me].address.clone(),
    };
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| RingNetError::Listen {
            address: address.clone(),
            source,
        })?;
    progress(format!(
        "member {me} of {n} listening on {address}, connecting to the others"
    ));
    let deadline = Instant::now() + opts.connect_timeout;
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<Option<(TcpStream, Session)>>();
    let refusals: Arc<std::sync::Mutex<Refusals>> = Arc::default();
    let acceptor = spawn_acceptor(
        listener,
        ring.clone(),
        me,
        id.clone(),
        conn_tx.clone(),
        progress.clone(),
        refusals.clone(),
    );
    for peer in (me + 1)..n {
        spawn_dial(ring, me, id, peer, deadline, &conn_tx, progress, &refusals);
    }
    drop(conn_tx);
    let (ev_tx, events) = mpsc::unbounded_channel::<Event>();
    let verifier = Verifier::new(ring.clone());
    let mut senders: HashMap<usize, Sender> = HashMap::new();
    let mut writers = Vec::new();
    let mut dial_failures = 0;
    while senders.len() + dial_failures < n - 1 {
        match tokio::time::timeout_at(deadline, conn_rx.recv()).await {
            Ok(Some(None)) => dial_failures += 1,
            Ok(Some(Some((stream, session)))) => {
                if senders.contains_key(&session.peer) {
                    continue;
                }
                let peer = session.peer;
                let (tx, w) = spawn_connection(stream, session, verifier.clone(), ev_tx.clone());
                senders.insert(peer, tx);
                writers.push(w);
            }
            Ok(None) | Err(_) => break,
        }
    }
    progress(format!(
        "connected to {} of {} members",
        senders.len(),
        n - 1
    ));
    if senders.is_empty() {
        // Nobody to average with: say why rather than "too few members".
        let first = refusals
            .lock()
            .ok()
            .and_then(|mut r| r.errors.drain(..).next());
        return Err(first.unwrap_or(RingNetError::Timeout {
            what: format!(
                "waiting for the other members to connect ({:?})",
                opts.connect_timeout
            ),
        }));
    }
    Ok(Links {
        senders,
        writers,
        events,
        acceptor,
        refusals,
    })
}

/// Dials `peer` in the background; the session (or `None` on failure, the error kept in
/// `refusals`) arrives on `tx`.
#[allow(clippy::too_many_arguments)]
fn spawn_dial(
    ring: &Arc<RingSpec>,
    me: usize,
    id: &Arc<Identity>,
    peer: usize,
    deadline: Instant,
    tx: &mpsc::UnboundedSender<Option<(TcpStream, Session)>>,
    progress: &Progress,
    refusals: &Arc<std::sync::Mutex<Refusals>>,
) {
    let (ring, id, tx) = (ring.clone(), id.clone(), tx.clone());
    let (progress, refusals) = (progress.clone(), refusals.clone());
    tokio::spawn(async move {
        match connect(ring, me, id, peer, deadline).await {
            Ok(c) => {
                let _ = tx.send(Some(c));
            }
            Err(e) => {
                progress(e.to_string());
                if let Ok(mut r) = refusals.lock() {
                    r.errors.push(e);
                }
                let _ = tx.send(None);
            }
        }
    });
}

/// Sends the machine's outgoing messages to their peers (a lost peer's are dropped).
fn dispatch(outs: Vec<super::proto::Out>, senders: &HashMap<usize, Sender>) {
    for o in outs {
        if let Some(tx) = senders.get(&o.to) {
            let _ = tx.send(o.bytes);
        }
    }
}

/// Feeds the machine every checked message, lost peer and step timeout until it finishes;
/// returns when the data phase began (all commits in), for the reduce time.
async fn drive(
    machine: &mut Machine,
    links: &mut Links,
    ring: &RingSpec,
    opts: &JoinOptions,
    progress: &Progress,
) -> Option<std::time::Instant> {
    let mut reducing: Option<std::time::Instant> = None;
    let mut last = (machine.view(), machine.state(), machine.excluded().len());
    let mut timer = Instant::now() + opts.step_timeout;
    while !machine.is_finished() {
        tokio::select! {
            ev = links.events.recv() => {
                match ev {
                    Some(Event::Msg(checked)) => match (*checked).and_then(|c| machine.handle_checked(c)) {
                        Ok(outs) => {
                            timer = Instant::now() + opts.step_timeout;
                            dispatch(outs, &links.senders);
                        }
                        Err(e) => progress(format!("refused: {e}")),
                    },
                    Some(Event::Lost(peer)) => {
                        if !machine.is_finished() {
                            progress(format!("connection to member {peer} lost"));
                        }
                        dispatch(machine.peer_lost(peer), &links.senders);
                    }
                    None => {}
                }
            }
            _ = tokio::time::sleep_until(timer) => {
                progress(format!(
                    "no progress for {:?} in view {} ({}): timing out",
                    opts.step_timeout, machine.view(), machine.state()
                ));
                timer = Instant::now() + opts.step_timeout;
                dispatch(machine.on_timeout(), &links.senders);
            }
        }
        if reducing.is_none() && machine.state() == "reduce" {
            reducing = Some(std::time::Instant::now());
        }
        last = report_changes(machine, ring, last, progress);
    }
    reducing
}

/// Reports exclusions, view and state changes since `last`; returns the new `last`.
fn report_changes(
    machine: &Machine,
    ring: &RingSpec,
    last: (u32, &'static str, usize),
    progress: &Progress,
) -> (u32, &'static str, usize) {
    let now = (machine.view(), machine.state(), machine.excluded().len());
    if now == last {
        return last;
    }
    for e in &machine.excluded()[last.2..] {
        progress(format!(
            "member {} ({}) excluded from view {}: {}",
            e.member, ring.members[e.member].id, e.view, e.reason
        ));
    }
    if now.0 != last.0 {
        progress(format!(
            "view {}: members {:?}",
            machine.view(),
            machine.members()
        ));
    }
    if now.1 != last.1 {
        progress(format!("view {}: {}", now.0, now.1));
    }
    now
}

/// Stops accepting, says what was refused before authentication, lets the writers send what
/// is queued (the verdict), then closes.
async fn close(links: Links, opts: &JoinOptions, progress: &Progress) {
    links.acceptor.abort();
    if let Ok(r) = links.refusals.lock()
        && r.refused + r.dropped > 0
    {
        progress(format!(
            "before authentication: refused {} connection(s), dropped {} (over the limits, \
             too slow or not speaking the protocol)",
            r.refused, r.dropped
        ));
    }
    drop(links.senders);
    for w in links.writers {
        let _ = tokio::time::timeout(opts.step_timeout, w).await;
    }
}

/// [`join`] on a runtime of its own, for the command line.
pub fn join_blocking(
    ring: Arc<RingSpec>,
    me: usize,
    id: Arc<Identity>,
    input: Arc<Input>,
    opts: JoinOptions,
    progress: Progress,
) -> Result<Joined, RingNetError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RingNetError::Runtime)?;
    rt.block_on(join(ring, me, id, input, opts, progress))
}
