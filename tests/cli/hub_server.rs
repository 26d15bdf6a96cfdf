//! A local Hugging Face Hub for the tests: the endpoints `gym publish --hf` uses (repository
//! lookup and creation, preupload, the Git LFS batch API with basic and multipart transfers and
//! verify, the NDJSON commit), each checking its requests strictly. Every deviation is recorded
//! in `State::violations` and answered with 400, so a test sees it either way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const LFS_TYPE: &str = "application/vnd.git-lfs+json";

#[derive(Debug, Default)]
pub struct Repo {
    pub private: bool,
    /// Path → content, as of the last commit.
    pub files: BTreeMap<String, Vec<u8>>,
    pub commits: Vec<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub token: String,
    pub repos: BTreeMap<String, Repo>,
    /// LFS objects by sha256 oid.
    pub lfs: HashMap<String, Vec<u8>>,
    /// Multipart uploads in progress: oid → parts by number.
    pub parts: HashMap<String, BTreeMap<u64, Vec<u8>>>,
    /// "METHOD /path" of every request.
    pub log: Vec<String>,
    pub violations: Vec<String>,
    /// Injected failures: (path substring, status, remaining count).
    pub fail: Vec<(String, u16, u32)>,
    /// Files at least this large (or *.safetensors, *.bin) go to LFS.
    pub lfs_threshold: u64,
    /// LFS objects larger than this get a multipart upload with this part size.
    pub chunk_size: u64,
    /// When set, every LFS object in a batch is refused with this (code, message).
    pub lfs_error: Option<(i64, String)>,
    /// Repositories the token may read but not write (403 on writes).
    pub read_only: Vec<String>,
}

pub struct HubServer {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Req {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn answer(status: u16, v: Value) -> Answer {
    Answer {
        status,
        body: v.to_string().into_bytes(),
        headers: vec![("Content-Type".into(), "application/json".into())],
    }
}

fn error(status: u16, msg: &str) -> Answer {
    let mut a = answer(status, json!({"error": msg}));
    a.headers.push(("X-Error-Message".into(), msg.into()));
    a
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

impl HubServer {
    pub fn start(token: &str) -> HubServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind the test hub"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let url = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State {
            token: token.into(),
            lfs_threshold: 1 << 20,
            chunk_size: 1 << 20,
            ..Default::default()
        }));
        let (s2, st2, u2) = (server.clone(), state.clone(), url.clone());
        let thread = std::thread::spawn(move || {
            while let Ok(mut rq) = s2.recv() {
                let mut body = Vec::new();
                let _ = rq.as_reader().read_to_end(&mut body);
                let req = Req {
                    method: rq.method().as_str().to_string(),
                    path: rq.url().to_string(),
                    headers: rq
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                };
                let a = {
                    let mut st = st2.lock().unwrap();
                    handle(&mut st, &u2, &req)
                };
                let mut resp = tiny_http::Response::from_data(a.body).with_status_code(a.status);
                for (k, v) in a.headers {
                    resp.add_header(
                        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                    );
                }
                let _ = rq.respond(resp);
            }
        });
        HubServer {
            url,
            state,
            server,
            thread: Some(thread),
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn fail(&self, path_part: &str, status: u16, times: u32) {
        self.state().fail.push((path_part.into(), status, times));
    }
}

fn violation(st: &mut State, req: &Req, what: String) -> Answer {
    let msg = format!("{} {}: {what}", req.method, req.path);
    st.violations.push(msg.clone());
    error(400, &msg)
}

/// `Authorization: Bearer <token>`; None when it is right.
fn auth(st: &State, req: &Req) -> Option<Answer> {
    match req.header("authorization") {
        Some(h) if h == format!("Bearer {}", st.token) => None,
        Some(_) => Some(error(401, "Invalid credentials in Authorization header")),
        None => Some(error(401, "Authorization header is required")),
    }
}

fn json_body(req: &Req) -> Result<Value, String> {
    serde_json::from_slice(&req.body).map_err(|e| format!("body is not JSON: {e}"))
}

fn handle(st: &mut State, base: &str, req: &Req) -> Answer {
    st.log.push(format!("{} {}", req.method, req.path));
    if let Some(i) = st
        .fail
        .iter()
        .position(|(p, _, n)| *n > 0 && req.path.contains(p.as_str()))
    {
        st.fail[i].2 -= 1;
        let status = st.fail[i].1;
        return error(status, "injected failure");
    }
    if req.method == "POST"
        && req.path.contains("/preupload/")
        && st
            .read_only
            .iter()
            .any(|r| req.path.contains(&format!("/{r}/")))
    {
        return error(
            403,
            "You don't have the rights to create a commit in this repo",
        );
    }
    let segs: Vec<String> = req
        .path
        .split('?')
        .next()
        .unwrap()
        .split('/')
        .skip(1)
        .map(String::from)
        .collect();
    let s: Vec<&str> = segs.iter().map(|x| x.as_str()).collect();
    match (req.method.as_str(), s.as_slice()) {
        ("GET", ["api", "models", o, n]) => {
            if let Some(a) = auth(st, req) {
                return a;
            }
            match st.repos.get(&format!("{o}/{n}")) {
                Some(_) => answer(200, json!({"id": format!("{o}/{n}")})),
                None => error(404, "Repository not found"),
            }
        }
        ("POST", ["api", "repos", "create"]) => {
            if let Some(a) = auth(st, req) {
                return a;
            }
            let v = match json_body(req) {
                Ok(v) => v,
                Err(e) => return violation(st, req, e),
            };
            let (Some(name), Some(org)) = (v["name"].as_str(), v["organization"].as_str()) else {
                return violation(
                    st,
                    req,
                    format!("name and organization must be strings: {v}"),
                );
            };
            if !v["private"].is_boolean() {
                return violation(st, req, "private must be a boolean".into());
            }
            let id = format!("{org}/{name}");
            if st.repos.contains_key(&id) {
                return error(409, "You already created this model repo");
            }
            st.repos.insert(
                id.clone(),
                Repo {
                    private: v["private"].as_bool().unwrap(),
                    ..Default::default()
                },
            );
            answer(200, json!({"url": format!("{base}/{id}")}))
        }
        ("POST", ["api", "models", o, n, "preupload", rev]) => {
            if let Some(a) = auth(st, req) {
                return a;
            }
            if !st.repos.contains_key(&format!("{o}/{n}")) {
                return error(404, "Repository not found");
            }
            if *rev != "main" {
                return error(404, &format!("Revision not found: {rev}"));
            }
            if req.header("content-type") != Some("application/json") {
                return violation(st, req, "content-type must be application/json".into());
            }
            let v = match json_body(req) {
                Ok(v) => v,
                Err(e) => return violation(st, req, e),
            };
            let Some(files) = v["files"].as_array() else {
                return violation(st, req, "files must be an array".into());
            };
            let mut out = Vec::new();
            for f in files {
                let (Some(path), Some(size), Some(sample)) =
                    (f["path"].as_str(), f["size"].as_u64(), f["sample"].as_str())
                else {
                    return violation(st, req, format!("each file needs path, size, sample: {f}"));
                };
                let Ok(sample) = base64::engine::general_purpose::STANDARD.decode(sample) else {
                    return violation(st, req, format!("{path}: sample is not base64"));
                };
                if sample.len() > 512 || (sample.len() as u64) != size.min(512) {
                    return violation(
                        st,
                        req,
                        format!(
                            "{path}: sample of {} bytes for a {size}-byte file",
                            sample.len()
                        ),
                    );
                }
                let lfs = size >= st.lfs_threshold
                    || path.ends_with(".safetensors")
                    || path.ends_with(".bin");
                out.push(json!({"path": path, "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": false}));
            }
            answer(200, json!({"files": out}))
        }
        ("POST", [o, n, "info", "lfs", "objects", "batch"]) if n.ends_with(".git") => {
            if let Some(a) = auth(st, req) {
                return a;
            }
            let repo = format!("{o}/{}", n.trim_end_matches(".git"));
            if !st.repos.contains_key(&repo) {
                return error(404, "Repository not found");
            }
            if req.header("content-type") != Some(LFS_TYPE)
                || req.header("accept") != Some(LFS_TYPE)
            {
                return violation(
                    st,
                    req,
                    format!("Accept and Content-Type must be {LFS_TYPE}"),
                );
            }
            let v = match json_body(req) {
                Ok(v) => v,
                Err(e) => return violation(st, req, e),
            };
            if v["operation"] != "upload"
                || v["hash_algo"] != "sha256"
                || v["ref"]["name"] != "main"
            {
                return violation(st, req, format!("operation, hash_algo or ref wrong: {v}"));
            }
            let transfers: Vec<&str> = v["transfers"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
                .unwrap_or_default();
            if !transfers.contains(&"basic") || !transfers.contains(&"multipart") {
                return violation(
                    st,
                    req,
                    format!("transfers must offer basic and multipart: {transfers:?}"),
                );
            }
            let mut objects = Vec::new();
            for o in v["objects"].as_array().cloned().unwrap_or_default() {
                let (Some(oid), Some(size)) = (o["oid"].as_str(), o["size"].as_u64()) else {
                    return violation(st, req, format!("object needs oid and size: {o}"));
                };
                if oid.len() != 64
                    || !oid
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return violation(st, req, format!("oid {oid} is not lowercase sha256 hex"));
                }
                if let Some((code, message)) = &st.lfs_error {
                    objects.push(json!({"oid": oid, "size": size, "error": {"code": code, "message": message}}));
                    continue;
                }
                if st.lfs.get(oid).is_some_and(|b| b.len() as u64 == size) {
                    objects.push(json!({"oid": oid, "size": size}));
                    continue;
                }
                let verify = json!({"href": format!("{base}/{repo}.git/info/lfs/objects/verify"), "header": {}});
                let upload = if size > st.chunk_size {
                    let mut header = serde_json::Map::new();
                    header.insert("chunk_size".into(), json!(st.chunk_size.to_string()));
                    for i in 1..=size.div_ceil(st.chunk_size) {
                        header.insert(
                            format!("{i:05}"),
                            json!(format!("{base}/s3/part/{oid}/{i}?X-Amz-Signature=abc")),
                        );
                    }
                    json!({"href": format!("{base}/s3/complete/{oid}?uploadId=1"), "header": header})
                } else {
                    json!({"href": format!("{base}/s3/object/{oid}?X-Amz-Signature=abc")})
                };
                objects.push(json!({"oid": oid, "size": size, "authenticated": true, "actions": {"upload": upload, "verify": verify}}));
            }
            let mut a = answer(200, json!({"transfer": "multipart", "objects": objects}));
            a.headers[0].1 = LFS_TYPE.into();
            a
        }
        ("PUT", ["s3", "object", oid]) => {
            if req.header("authorization").is_some() {
                return violation(
                    st,
                    req,
                    "a presigned upload must not carry the Hub token".into(),
                );
            }
            if sha256_hex(&req.body) != *oid {
                return violation(st, req, "uploaded bytes do not hash to the oid".into());
            }
            st.lfs.insert(oid.to_string(), req.body.clone());
            Answer {
                status: 200,
                body: Vec::new(),
                headers: vec![("ETag".into(), "\"x\"".into())],
            }
        }
        ("PUT", ["s3", "part", oid, n]) => {
            if req.header("authorization").is_some() {
                return violation(
                    st,
                    req,
                    "a presigned upload must not carry the Hub token".into(),
                );
            }
            let n: u64 = n.parse().unwrap_or(0);
            let etag = format!("\"{}\"", &sha256_hex(&req.body)[..16]);
            st.parts
                .entry(oid.to_string())
                .or_default()
                .insert(n, req.body.clone());
            Answer {
                status: 200,
                body: Vec::new(),
                headers: vec![("ETag".into(), etag)],
            }
        }
        ("POST", ["s3", "complete", oid]) => {
            if req.header("content-type") != Some(LFS_TYPE) {
                return violation(
                    st,
                    req,
                    format!("completion content-type must be {LFS_TYPE}"),
                );
            }
            let v = match json_body(req) {
                Ok(v) => v,
                Err(e) => return violation(st, req, e),
            };
            if v["oid"] != *oid {
                return violation(st, req, "completion oid differs".into());
            }
            let stored = st.parts.remove(*oid).unwrap_or_default();
            let listed = v["parts"].as_array().cloned().unwrap_or_default();
            if listed.len() != stored.len() {
                return violation(
                    st,
                    req,
                    format!("{} parts listed, {} uploaded", listed.len(), stored.len()),
                );
            }
            let mut all = Vec::new();
            for (i, p) in listed.iter().enumerate() {
                let n = p["partNumber"].as_u64().unwrap_or(0);
                let Some(bytes) = stored.get(&n) else {
                    return violation(st, req, format!("part {n} was not uploaded"));
                };
                if n != i as u64 + 1
                    || p["etag"].as_str()
                        != Some(format!("\"{}\"", &sha256_hex(bytes)[..16]).as_str())
                {
                    return violation(st, req, format!("part {i}: wrong number or etag: {p}"));
                }
                if i + 1 < listed.len() && bytes.len() as u64 != st.chunk_size {
                    return violation(
                        st,
                        req,
                        format!("part {n} has {} bytes, not chunk_size", bytes.len()),
                    );
                }
                all.extend_from_slice(bytes);
            }
            if sha256_hex(&all) != *oid {
                return violation(st, req, "assembled parts do not hash to the oid".into());
            }
            st.lfs.insert(oid.to_string(), all);
            answer(200, json!({}))
        }
        ("POST", [_, n, "info", "lfs", "objects", "verify"]) if n.ends_with(".git") => {
            if let Some(a) = auth(st, req) {
                return a;
            }
            let v = match json_body(req) {
                Ok(v) => v,
                Err(e) => return violation(st, req, e),
            };
            let oid = v["oid"].as_str().unwrap_or_default();
            match st.lfs.get(oid) {
                Some(b) if Some(b.len() as u64) == v["size"].as_u64() => answer(200, json!({})),
                _ => error(404, "Object not found"),
            }
        }
        ("POST", ["api", "models", o, n, "commit", rev]) => {
            if let Some(a) = auth(st, req) {
                return a;
            }
            let id = format!("{o}/{n}");
            if !st.repos.contains_key(&id) {
                return error(404, "Repository not found");
            }
            if *rev != "main" {
                return error(404, &format!("Revision not found: {rev}"));
            }
            if req.header("content-type") != Some("application/x-ndjson") {
                return violation(st, req, "content-type must be application/x-ndjson".into());
            }
            let text = String::from_utf8_lossy(&req.body).into_owned();
            let lines: Vec<Value> = match text
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
            {
                Ok(l) => l,
                Err(e) => return violation(st, req, format!("a line is not JSON: {e}")),
            };
            if lines.first().map(|l| &l["key"]) != Some(&json!("header"))
                || !lines[0]["value"]["summary"].is_string()
            {
                return violation(
                    st,
                    req,
                    "the first line must be the header with a summary".into(),
                );
            }
            let mut files = BTreeMap::new();
            for l in &lines[1..] {
                let v = &l["value"];
                let Some(path) = v["path"].as_str() else {
                    return violation(st, req, format!("operation without a path: {l}"));
                };
                match l["key"].as_str() {
                    Some("file") => {
                        if v["encoding"] != "base64" {
                            return violation(st, req, format!("{path}: encoding must be base64"));
                        }
                        let Some(bytes) = v["content"]
                            .as_str()
                            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                        else {
                            return violation(st, req, format!("{path}: content is not base64"));
                        };
                        files.insert(path.to_string(), bytes);
                    }
                    Some("lfsFile") => {
                        if v["algo"] != "sha256" {
                            return violation(st, req, format!("{path}: algo must be sha256"));
                        }
                        let oid = v["oid"].as_str().unwrap_or_default();
                        match st.lfs.get(oid) {
                            Some(b) if Some(b.len() as u64) == v["size"].as_u64() => {
                                files.insert(path.to_string(), b.clone());
                            }
                            _ => {
                                return error(
                                    400,
                                    &format!("{path}: LFS object {oid} was not uploaded"),
                                );
                            }
                        }
                    }
                    _ => return violation(st, req, format!("unknown operation {l}")),
                }
            }
            let repo = st.repos.get_mut(&id).unwrap();
            let oid = sha256_hex(format!("{id}{}{text}", repo.commits.len()).as_bytes())[..40]
                .to_string();
            repo.files.extend(files);
            repo.commits.push(oid.clone());
            answer(
                200,
                json!({"commitUrl": format!("{base}/{id}/commit/{oid}"), "commitOid": oid}),
            )
        }
        _ => violation(st, req, "no such endpoint".into()),
    }
}
