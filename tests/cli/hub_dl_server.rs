//! A local Hugging Face Hub for downloads, answering like huggingface.co does for
//! `huggingface_hub` and for gym (a plain HTTP/1.1 server on std sockets, a thread per
//! connection, so a test can cut a connection mid-body and a benchmark can stream at socket
//! speed):
//!
//! - `GET /api/{models|datasets}/{owner}/{name}/revision/{rev}`: `{"id", "sha", "private",
//!   "siblings": [{"rfilename"}]}`.
//! - `HEAD|GET /[datasets/]{owner}/{name}/resolve/{rev}/{path}`: a regular file answers 200
//!   with its bytes, `ETag` = the git blob id and `X-Repo-Commit`; an LFS file (safetensors,
//!   parquet, bin, or large) answers `302` to a CDN URL with `X-Linked-Etag` = its sha256,
//!   `X-Linked-Size` and `X-Repo-Commit`, as the Hub does.
//! - `GET /cdn/{sha256}?X-Amz-Signature=…`: the bytes, honouring `Range: bytes=N-` (206).
//! - Errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) and
//!   `X-Error-Message`. A private repository without the right token: 401 `RepoNotFound`
//!   (no token) or 401 "Invalid credentials" (a wrong one).
//!
//! Faults to inject: cut the connection after some bytes of a file, serve a file with a byte
//! flipped, serve a short body. Every request is logged with its `Range` and whether it
//! carried a token.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, Default, Clone)]
pub struct DlRepo {
    pub private: bool,
    pub commit: String,
    pub files: BTreeMap<String, Arc<Vec<u8>>>,
    /// path → sha256 hex of its bytes.
    pub oids: BTreeMap<String, String>,
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorized: bool,
}

#[derive(Debug, Default)]
pub struct DlState {
    pub token: String,
    /// "models/o/n" or "datasets/o/n" → repository.
    pub repos: BTreeMap<String, DlRepo>,
    pub log: Vec<Logged>,
    /// (path substring, bytes to send before cutting the connection, times).
    pub cut: Vec<(String, usize, u32)>,
    /// Path substrings of files served with their last byte flipped.
    pub corrupt: Vec<String>,
    /// (path substring, bytes): served as a complete answer of only that many bytes.
    pub short: Vec<(String, usize)>,
    /// Renamed repositories: (old "owner/name", new "owner/name"); requests for the old name
    /// are answered `307` with a relative `Location` on the new one, as the Hub does.
    pub renamed: Vec<(String, String)>,
    /// Bytes of file content sent.
    pub sent: u64,
    /// sha256 → (path, bytes), for the CDN.
    blobs: std::collections::HashMap<String, (String, Arc<Vec<u8>>)>,
}

pub struct DlServer {
    pub url: String,
    pub state: Arc<Mutex<DlState>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Drop for DlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The git blob id: sha1("blob {len}\0" ‖ bytes).
pub fn git_blob_id(b: &[u8]) -> String {
    use sha1::Sha1;
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    hex::encode(h.finalize())
}

pub fn is_lfs(path: &str, size: usize) -> bool {
    [".safetensors", ".parquet", ".bin"]
        .iter()
        .any(|e| path.ends_with(e))
        || size >= 10 << 20
}

impl DlServer {
    pub fn start(token: &str) -> DlServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the download hub");
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let state = Arc::new(Mutex::new(DlState {
            token: token.into(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, base) = (state.clone(), stop.clone(), url.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, base) = (st.clone(), base.clone());
                std::thread::spawn(move || serve(conn, &st, &base));
            }
        });
        DlServer {
            url,
            state,
            stop,
            addr,
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, DlState> {
        self.state.lock().unwrap()
    }

    /// Adds (or replaces) a repository; `kind` is "models" or "datasets". Returns its commit.
    pub fn add_repo(
        &self,
        kind: &str,
        id: &str,
        files: &[(&str, Vec<u8>)],
        private: bool,
    ) -> String {
        let mut h = Sha256::new();
        h.update(id.as_bytes());
        for (p, b) in files {
            h.update(p.as_bytes());
            h.update(sha256_hex(b).as_bytes());
        }
        let commit = hex::encode(h.finalize())[..40].to_string();
        let mut repo = DlRepo {
            private,
            commit: commit.clone(),
            ..Default::default()
        };
        let mut st = self.state();
        for (p, b) in files {
            let b = Arc::new(b.clone());
            let oid = sha256_hex(&b);
            st.blobs.insert(oid.clone(), (p.to_string(), b.clone()));
            repo.oids.insert(p.to_string(), oid);
            repo.files.insert(p.to_string(), b);
        }
        st.repos.insert(format!("{kind}/{id}"), repo);
        commit
    }

    /// Requests whose path contains `part`.
    pub fn requests(&self, part: &str) -> Vec<Logged> {
        self.state()
            .log
            .iter()
            .filter(|l| l.path.contains(part))
            .cloned()
            .collect()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

/// What to send back.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    range: (usize, usize),
    /// Close the connection after this many body bytes.
    cut: Option<usize>,
}

fn reply(status: u16, body: Vec<u8>) -> Reply {
    let n = body.len();
    Reply {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Arc::new(body),
        range: (0, n),
        cut: None,
    }
}

fn hub_error(status: u16, code: Option<&str>, msg: &str) -> Reply {
    let mut r = reply(status, json!({ "error": msg }).to_string().into_bytes());
    r.headers.push(("X-Error-Message".into(), msg.into()));
    if let Some(c) = code {
        r.headers.push(("X-Error-Code".into(), c.into()));
    }
    r
}

fn serve(conn: TcpStream, st: &Mutex<DlState>, base: &str) {
    let Ok(w) = conn.try_clone() else { return };
    let mut w = w;
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r) {
        let rep = {
            let mut s = st.lock().unwrap();
            let authorized = req.header("authorization") == Some(&format!("Bearer {}", s.token));
            s.log.push(Logged {
                method: req.method.clone(),
                path: req.path.clone(),
                range: req.header("range").map(String::from),
                authorized,
            });
            route(&mut s, base, &req)
        };
        let (a, b) = rep.range;
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", rep.status, b - a);
        for (k, v) in &rep.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        if req.method == "HEAD" {
            continue;
        }
        let end = rep.cut.map_or(b, |c| (a + c).min(b));
        if w.write_all(&rep.body[a..end]).is_err() {
            return;
        }
        if rep.status < 300 && rep.headers.iter().any(|(k, _)| k == "X-File") {
            st.lock().unwrap().sent += (end - a) as u64;
        }
        if end < b {
            let _ = w.flush();
            let _ = w.shutdown(std::net::Shutdown::Write); // FIN after the bytes sent: none is lost
            return;
        }
    }
}

fn auth(s: &DlState, req: &Request, repo: &DlRepo) -> Option<Reply> {
    if !repo.private {
        return None;
    }
    match req.header("authorization") {
        Some(h) if h == format!("Bearer {}", s.token) => None,
        Some(_) => Some(hub_error(
            401,
            None,
            "Invalid credentials in Authorization header",
        )),
        None => Some(hub_error(
            401,
            Some("RepoNotFound"),
            "Repository not found (private: authentication required)",
        )),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `307` for a request naming a renamed repository.
fn rename(s: &DlState, req: &Request) -> Option<Reply> {
    for (old, new) in &s.renamed {
        for prefix in ["/api/models/", "/api/datasets/", "/datasets/", "/"] {
            let from = format!("{prefix}{old}/");
            if let Some(rest) = req.path.strip_prefix(&from) {
                let mut r = reply(307, Vec::new());
                r.headers = vec![("Location".into(), format!("{prefix}{new}/{rest}"))];
                return Some(r);
            }
        }
    }
    None
}

fn route(s: &mut DlState, base: &str, req: &Request) -> Reply {
    if let Some(r) = rename(s, req) {
        return r;
    }
    let path = req.path.split('?').next().unwrap_or("").to_string();
    let segs: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let seg: Vec<&str> = segs.iter().map(|x| x.as_str()).collect();
    match (req.method.as_str(), seg.as_slice()) {
        (
            "GET",
            [
                "api",
                kind @ ("models" | "datasets"),
                o,
                n,
                "revision",
                rev @ ..,
            ],
        ) => {
            let Some(repo) = s.repos.get(&format!("{kind}/{o}/{n}")).cloned() else {
                return hub_error(404, Some("RepoNotFound"), "Repository not found");
            };
            if let Some(e) = auth(s, req, &repo) {
                return e;
            }
            let rev = rev.join("/");
            if rev != "main" && rev != repo.commit {
                return hub_error(
                    404,
                    Some("RevisionNotFound"),
                    &format!("Invalid rev id: {rev}"),
                );
            }
            let siblings: Vec<_> = repo
                .files
                .keys()
                .map(|f| json!({ "rfilename": f }))
                .collect();
            let v = json!({"id": format!("{o}/{n}"), "sha": repo.commit, "private": repo.private,
                           "siblings": siblings});
            reply(200, v.to_string().into_bytes())
        }
        ("GET", ["api", kind @ ("models" | "datasets"), o, n, "tree", rev, ..]) => {
            let Some(repo) = s.repos.get(&format!("{kind}/{o}/{n}")).cloned() else {
                return hub_error(404, Some("RepoNotFound"), "Repository not found");
            };
            if let Some(e) = auth(s, req, &repo) {
                return e;
            }
            if *rev != "main" && *rev != repo.commit {
                return hub_error(
                    404,
                    Some("RevisionNotFound"),
                    &format!("Invalid rev id: {rev}"),
                );
            }
            reply(200, tree(&repo).to_string().into_bytes())
        }
        ("GET" | "HEAD", ["datasets", o, n, "resolve", rest @ ..]) => {
            resolve(s, base, req, &format!("datasets/{o}/{n}"), rest)
        }
        ("GET" | "HEAD", [o, n, "resolve", rest @ ..]) => {
            resolve(s, base, req, &format!("models/{o}/{n}"), rest)
        }
        ("GET" | "HEAD", ["cdn", oid]) => cdn(s, req, oid),
        _ => hub_error(
            404,
            None,
            &format!("no such endpoint: {} {path}", req.method),
        ),
    }
}

/// `list_repo_tree(recursive=True)`: folders, and files with their git blob id, size and LFS
/// pointer data.
fn tree(repo: &DlRepo) -> serde_json::Value {
    let mut dirs = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (p, b) in &repo.files {
        let mut d = String::new();
        for part in p.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            d = if d.is_empty() {
                part.to_string()
            } else {
                format!("{d}/{part}")
            };
            dirs.insert(d.clone());
        }
        let mut f = json!({"type": "file", "oid": git_blob_id(b), "size": b.len(), "path": p});
        if is_lfs(p, b.len()) {
            f["lfs"] = json!({"oid": repo.oids[p], "size": b.len(), "pointerSize": 134});
        }
        out.push(f);
    }
    for d in dirs {
        out.push(
            json!({"type": "directory", "oid": git_blob_id(d.as_bytes()), "size": 0, "path": d}),
        );
    }
    serde_json::Value::Array(out)
}

fn resolve(s: &mut DlState, base: &str, req: &Request, key: &str, rest: &[&str]) -> Reply {
    let Some(repo) = s.repos.get(key).cloned() else {
        return hub_error(404, Some("RepoNotFound"), "Repository not found");
    };
    if let Some(e) = auth(s, req, &repo) {
        return e;
    }
    let Some((rev, file)) = rest.split_first() else {
        return hub_error(404, None, "no revision");
    };
    if *rev != "main" && *rev != repo.commit {
        return hub_error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        );
    }
    let file = file.join("/");
    let Some(bytes) = repo.files.get(&file).cloned() else {
        return hub_error(
            404,
            Some("EntryNotFound"),
            &format!("{file} does not exist"),
        );
    };
    let commit = ("X-Repo-Commit".to_string(), repo.commit.clone());
    if is_lfs(&file, bytes.len()) {
        let oid = repo.oids[&file].clone();
        let mut r = reply(302, Vec::new());
        r.headers = vec![
            (
                "Location".into(),
                // another host than the Hub's, as a CDN is: clients must drop the token
                format!(
                    "{}/cdn/{oid}?X-Amz-Signature=sig&file={file}",
                    base.replace("127.0.0.1", "localhost")
                ),
            ),
            ("X-Linked-Etag".into(), format!("\"{oid}\"")),
            ("X-Linked-Size".into(), bytes.len().to_string()),
            ("ETag".into(), format!("\"{}\"", git_blob_id(b"pointer"))),
            commit,
        ];
        return r;
    }
    let mut r = file_reply(s, &file, bytes, req);
    r.headers
        .push(("ETag".into(), format!("\"{}\"", git_blob_id(&r.body))));
    r.headers.push(commit);
    r
}

/// The bytes of a file, with the faults injected for it and the request's range.
fn file_reply(s: &mut DlState, file: &str, bytes: Arc<Vec<u8>>, req: &Request) -> Reply {
    let mut body = bytes;
    if s.corrupt.iter().any(|c| file.contains(c.as_str())) {
        let mut b = (*body).clone();
        if let Some(x) = b.last_mut() {
            *x ^= 1;
        }
        body = Arc::new(b);
    }
    let n = body.len();
    let mut r = reply(200, Vec::new());
    r.headers = vec![
        ("Content-Type".into(), "application/octet-stream".into()),
        ("X-File".into(), file.into()),
        ("Accept-Ranges".into(), "bytes".into()),
    ];
    r.range = (0, n);
    r.body = body;
    if let Some(from) = req
        .header("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok())
    {
        if from >= n {
            return hub_error(416, None, "range not satisfiable");
        }
        r.status = 206;
        r.range = (from, n);
        r.headers.push((
            "Content-Range".into(),
            format!("bytes {from}-{}/{n}", n - 1),
        ));
    }
    if let Some((_, k)) = s.short.iter().find(|(p, _)| file.contains(p.as_str())) {
        r.range.1 = (r.range.0 + k).min(r.range.1);
    }
    if req.method == "GET"
        && let Some(c) = s
            .cut
            .iter_mut()
            .find(|(p, _, t)| *t > 0 && file.contains(p.as_str()))
    {
        c.2 -= 1;
        r.cut = Some(c.1);
    }
    r
}

fn cdn(s: &mut DlState, req: &Request, oid: &str) -> Reply {
    if req.header("authorization").is_some() {
        return hub_error(
            400,
            None,
            "a presigned CDN URL must not carry the Hub token",
        );
    }
    match s.blobs.get(oid).cloned() {
        Some((file, bytes)) => file_reply(s, &file, bytes, req),
        None => hub_error(404, None, "NoSuchKey"),
    }
}
