"""A local Hugging Face Hub for downloads, answering the way huggingface.co does (the same
answers as tests/cli/hub_dl_server.rs gives gym's CLI tests):

- ``GET /api/models/{owner}/{name}/revision/{rev}``: ``{"id", "sha", "private", "siblings"}``.
- ``GET /api/models/{owner}/{name}/tree/{rev}``: the files with git blob ids and LFS data.
- ``HEAD|GET /{owner}/{name}/resolve/{rev}/{path}``: a regular file answers 200 with its bytes,
  ``ETag`` = its git blob id and ``X-Repo-Commit``; an LFS file (``*.safetensors``) answers 302
  to a CDN URL on another host name with ``X-Linked-Etag`` = its sha256 and ``X-Linked-Size``.
- ``GET /cdn/{sha256}``: the bytes (``Range: bytes=N-`` honoured); a token here is refused.
- Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).
Every request is logged as ``"METHOD path"``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List
from urllib.parse import unquote


def git_blob_id(b: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()


class HubServer:
    def __init__(self) -> None:
        self.repos: Dict[str, dict] = {}
        self.blobs: Dict[str, bytes] = {}
        self.log: List[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_repo(self, repo: str, folder: Path) -> str:
        """Serves every file of ``folder`` as model repository ``repo``; returns its commit."""
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        commit = hashlib.sha1(repr(sorted((k, git_blob_id(v)) for k, v in files.items())).encode()).hexdigest()
        self.repos[repo] = {"commit": commit, "files": files}
        for b in files.values():
            self.blobs[hashlib.sha256(b).hexdigest()] = b
        return commit

    # --- answers -------------------------------------------------------------------------
    def _send(self, h, status: int, headers: dict, body: bytes, send_body: bool) -> None:
        h.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if send_body and body:
            h.wfile.write(body)

    def _error(self, h, status: int, code, msg: str, send_body: bool) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": msg}
        if code:
            headers["X-Error-Code"] = code
        self._send(h, status, headers, json.dumps({"error": msg}).encode(), send_body)

    def _serve(self, h, body: bool) -> None:
        path = h.path.split("?")[0]
        self.log.append(f"{h.command} {path}")
        seg = [unquote(s) for s in path.split("/")[1:]]
        if h.command == "GET" and len(seg) >= 6 and seg[:2] == ["api", "models"] and seg[4] == "revision":
            return self._revision(h, f"{seg[2]}/{seg[3]}", "/".join(seg[5:]))
        if h.command == "GET" and len(seg) >= 6 and seg[:2] == ["api", "models"] and seg[4] == "tree":
            return self._tree(h, f"{seg[2]}/{seg[3]}", seg[5])
        if len(seg) >= 5 and seg[2] == "resolve":
            return self._resolve(h, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]), body)
        if len(seg) == 2 and seg[0] == "cdn":
            return self._cdn(h, seg[1], body)
        self._error(h, 404, None, f"no such endpoint: {h.command} {path}", body)

    def _repo(self, h, name: str, rev: str, body: bool):
        repo = self.repos.get(name)
        if repo is None:
            self._error(h, 404, "RepoNotFound", "Repository not found", body)
        elif rev not in ("main", repo["commit"]):
            self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}", body)
        else:
            return repo
        return None

    def _revision(self, h, name: str, rev: str) -> None:
        repo = self._repo(h, name, rev, True)
        if repo is not None:
            v = {"id": name, "sha": repo["commit"], "private": False,
                 "siblings": [{"rfilename": f} for f in repo["files"]]}
            self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(v).encode(), True)

    def _tree(self, h, name: str, rev: str) -> None:
        """``list_repo_tree(recursive=True)`` (what huggingface_hub's snapshot_download asks)."""
        repo = self._repo(h, name, rev, True)
        if repo is None:
            return
        out = []
        for p, b in repo["files"].items():
            f = {"type": "file", "oid": git_blob_id(b), "size": len(b), "path": p}
            if p.endswith(".safetensors"):
                f["lfs"] = {"oid": hashlib.sha256(b).hexdigest(), "size": len(b), "pointerSize": 134}
            out.append(f)
        self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(out).encode(), True)

    def _resolve(self, h, name: str, rev: str, file: str, body: bool) -> None:
        repo = self._repo(h, name, rev, body)
        if repo is None:
            return
        data = repo["files"].get(file)
        if data is None:
            return self._error(h, 404, "EntryNotFound", f"{file} does not exist", body)
        if file.endswith(".safetensors"):
            oid = hashlib.sha256(data).hexdigest()
            cdn = self.url.replace("127.0.0.1", "localhost")  # another host, as a CDN is
            return self._send(h, 302, {
                "Location": f"{cdn}/cdn/{oid}?X-Amz-Signature=sig",
                "X-Linked-Etag": f'"{oid}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{git_blob_id(b"pointer")}"',
                "X-Repo-Commit": repo["commit"],
            }, b"", body)
        self._send(h, 200, {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{git_blob_id(data)}"',
            "X-Repo-Commit": repo["commit"],
        }, data, body)

    def _cdn(self, h, oid: str, body: bool) -> None:
        if h.headers.get("Authorization"):
            return self._error(h, 400, None, "a presigned CDN URL must not carry the Hub token", body)
        data = self.blobs.get(oid)
        if data is None:
            return self._error(h, 404, None, "NoSuchKey", body)
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            return self._send(h, 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, data[start:], body)
        self._send(h, 200, {"Content-Type": "application/octet-stream"}, data, body)
