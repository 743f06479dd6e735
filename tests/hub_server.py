"""A loopback Hugging Face hub for tests: the part of the hub's HTTP API that
`huggingface_hub.snapshot_download` (and `seglens.models.hub`) use, serving repos held in
memory at fixed commits.

Routes (as huggingface_hub 1.x/2.x calls them):

- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}`` (model info,
  ``?blobs=true`` adds sizes): ``{"id", "sha", "siblings": [{"rfilename", "size"}]}``;
- ``GET /api/models/{repo}/tree/{rev}?recursive=..``: ``[{"type": "file", "oid", "size",
  "path", "lfs"?}]``;
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``,
  ``X-Linked-Etag`` / ``ETag`` (git blob sha1, or sha256 for LFS files), ``X-Linked-Size``
  and ``Content-Length``; ``Range: bytes=N-`` answers 206 (resumed downloads).

Unknown repos answer 404 ``X-Error-Code: RepoNotFound``, unknown revisions 404
``RevisionNotFound``, unknown files 404 ``EntryNotFound``, as the real hub does. Faults for
tests: `missing` (listed, never served), `interrupt_once` (the first GET sends half the
body and drops the connection), `chunk_delay_s` (slow downloads, to watch progress).
Every request is logged in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".model")


@dataclass
class HubRepo:
    repo_id: str
    sha: str
    files: dict[str, bytes]

    @classmethod
    def from_dir(cls, repo_id: str, sha: str, directory: Path) -> HubRepo:
        files = {
            p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()
        }
        return cls(repo_id, sha, files)


def _is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _etag(path: str, data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if _is_lfs(path) else _git_oid(data)


@dataclass
class RequestLog:
    method: str
    path: str
    range: str | None


@dataclass
class LoopbackHub:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    missing: set[tuple[str, str]] = field(default_factory=set)
    interrupt_once: set[tuple[str, str]] = field(default_factory=set)
    chunk_delay_s: float = 0.0
    requests: list[RequestLog] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def add(self, repo: HubRepo) -> None:
        self.repos[repo.repo_id] = repo

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the hub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoopbackHub:
        hub = self

        class Handler(_HubHandler):
            owner = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def downloads(self, repo_id: str | None = None) -> list[RequestLog]:
        """The GET requests for files (of one repo)."""
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and "/resolve/" in r.path
            and (repo_id is None or r.path.startswith(f"/{repo_id}/"))
        ]


class _HubHandler(BaseHTTPRequestHandler):
    owner: LoopbackHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # -- helpers --------------------------------------------------------------------------
    def _send_json(self, body: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(
            {"error": message}, 404, {"X-Error-Code": code, "X-Error-Message": message, **(headers or {})}
        )

    def _repo_at(self, repo_id: str, revision: str) -> HubRepo | None:
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            self._error("RepoNotFound", f"Repository {repo_id} not found")
            return None
        if revision not in (repo.sha, "main"):
            self._error("RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.owner.requests.append(RequestLog(self.command, path, self.headers.get("Range")))
        query = parse_qs(url.query)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(parts[2:4])
            rest = parts[4:]
            if not rest:
                return self._model_info(repo_id, "main", query)
            if rest[0] == "revision" and len(rest) >= 2:
                return self._model_info(repo_id, "/".join(rest[1:]), query)
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo_id, rest[1])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        self._send_json({"error": "not found"}, 404)

    def _model_info(self, repo_id: str, revision: str, query: dict[str, list[str]]) -> None:
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = [
            {"rfilename": name, **({"size": len(data), "blobId": _git_oid(data)} if blobs else {})}
            for name, data in sorted(repo.files.items())
        ]
        self._send_json({"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.sha, "siblings": siblings})

    def _tree(self, repo_id: str, revision: str) -> None:
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        entries = []
        for name, data in sorted(repo.files.items()):
            entry: dict[str, object] = {
                "type": "file",
                "oid": _git_oid(data),
                "size": len(data),
                "path": name,
            }
            if _is_lfs(name):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            entries.append(entry)
        self._send_json(entries)

    def _resolve(self, repo_id: str, revision: str, name: str, head: bool) -> None:
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        commit = {"X-Repo-Commit": repo.sha}
        if name not in repo.files or (repo_id, name) in self.owner.missing:
            return self._error("EntryNotFound", f"{name} does not exist on {revision}", commit)
        data = repo.files[name]
        start = 0
        ranged = self.headers.get("Range")
        if ranged and ranged.startswith("bytes=") and not head:
            start = int(ranged[len("bytes=") :].split("-")[0] or 0)
        body = data[start:]
        self.send_response(206 if start else 200)
        etag = _etag(name, data)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", repo.sha)
        if _is_lfs(name):
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if head:
            return
        key = (repo_id, name)
        if key in self.owner.interrupt_once and not start:
            self.owner.interrupt_once.discard(key)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        step = 16 * 1024
        for offset in range(0, len(body), step):
            self.wfile.write(body[offset : offset + step])
            if self.owner.chunk_delay_s:
                time.sleep(self.owner.chunk_delay_s)


class SilentHub:
    """A port that accepts connections and never answers (a hub that hangs)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()
