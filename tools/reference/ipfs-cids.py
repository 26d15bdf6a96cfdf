#!/usr/bin/env python3
"""Reference CIDs for `gym cid`, produced by a real IPFS node.

Writes testdata/ipfs/cids.json: for each test input, the CID the node's `add` returns with
kubo's defaults (CIDv0) and with `--cid-version 1` (raw leaves, printed in base32).

    tools/ci/ipfs-node.sh start            # prints export GYM_TEST_IPFS_API=...
    GYM_TEST_IPFS_API=http://127.0.0.1:45001 tools/reference/ipfs-cids.py

Inputs are generated, not committed: file contents are the stream
sha256(b"gym-ipfs-test" || u64le(j)) for j = 0, 1, 2, ..., cut to the wanted size
(tests/cli/cid.rs recreates them the same way). Only the standard library is used.
"""

import hashlib
import json
import os
import struct
import sys
import urllib.parse
import urllib.request
import uuid

CHUNK = 262144
FILES = [
    ("empty", 0),
    ("one-byte", 1),
    ("one-chunk", CHUNK),
    ("one-chunk-plus-one", CHUNK + 1),
    ("one-mib", 1 << 20),
    ("full-one-level", 174 * CHUNK),
    ("two-level", 174 * CHUNK + 1),
    ("two-level-plus", 174 * CHUNK * 2 + 3 * CHUNK + 17),
]
# A directory: (relative path, size); directories are implied by the paths.
TREE = [("a.txt", 12), ("sub/b.bin", CHUNK * 2 + 5), ("sub/c", 0), ("z/deeper/d.bin", 1000)]


def pattern(size):
    out = bytearray()
    j = 0
    while len(out) < size:
        out += hashlib.sha256(b"gym-ipfs-test" + struct.pack("<Q", j)).digest()
        j += 1
    return bytes(out[:size])


def add(api, parts, params):
    """POST /api/v0/add with multipart parts [(filename, content-type, bytes)]; returns entries."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, ctype, data in parts:
        body += f"--{boundary}\r\n".encode()
        fname = urllib.parse.quote(name, safe="")
        body += f'Content-Disposition: form-data; name="file"; filename="{fname}"\r\n'.encode()
        body += f"Content-Type: {ctype}\r\n\r\n".encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    url = f"{api}/api/v0/add?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, data=bytes(body), method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(req) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


VARIANTS = {
    "v0": {"pin": "false"},
    "v1": {"pin": "false", "cid-version": "1", "cid-base": "base32"},
}


def main():
    api = os.environ.get("GYM_TEST_IPFS_API")
    if not api:
        sys.exit("set GYM_TEST_IPFS_API (tools/ci/ipfs-node.sh start prints it)")
    version = json.loads(urllib.request.urlopen(urllib.request.Request(f"{api}/api/v0/version", method="POST")).read())
    files = []
    hello = {"name": "hello-world", "literal": "hello world\n"}
    for v, params in VARIANTS.items():
        hello[v] = add(api, [("hello", "application/octet-stream", b"hello world\n")], params)[-1]["Hash"]
    files.append(hello)
    for name, size in FILES:
        data = pattern(size)
        entry = {"name": name, "size": size}
        for v, params in VARIANTS.items():
            entry[v] = add(api, [(name, "application/octet-stream", data)], params)[-1]["Hash"]
        files.append(entry)
        print(f"{name}: {entry['v0']} {entry['v1']}", file=sys.stderr)
    dirs = set()
    for p, _ in TREE:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    parts = [("tree", "application/x-directory", b"")]
    parts += [(f"tree/{d}", "application/x-directory", b"") for d in sorted(dirs)]
    parts += [(f"tree/{p}", "application/octet-stream", pattern(s)) for p, s in TREE]
    tree = {"name": "tree", "files": [{"path": p, "size": s} for p, s in TREE]}
    for v, params in VARIANTS.items():
        entries = add(api, parts, params)
        root = [e for e in entries if e["Name"] == "tree"]
        tree[v] = root[0]["Hash"]
    doc = {
        "format": "gym-ipfs-reference/1",
        "generator": "tools/reference/ipfs-cids.py",
        "node": f"js-ipfs (npm ipfs 0.66.1, ipfs-core {version.get('Version')}), POST /api/v0/add",
        "pattern": 'sha256(b"gym-ipfs-test" || u64le(j)) for j = 0, 1, ..., cut to size',
        "files": files,
        "directories": [tree],
    }
    out = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "ipfs", "cids.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.normpath(out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
