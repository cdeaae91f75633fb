"""A small Hugging Face Hub stand-in for tests: stdlib only, 127.0.0.1, one user, one token.

It answers the part of the Hub API that ``huggingface_hub`` 2.4 uses for ``whoami``, ``create_repo``
(models, datasets, spaces), ``upload_file``/``upload_folder``/``create_commit`` (inline base64 files and
the git-LFS "basic" transfer), ``list_repo_files``/``list_repo_tree``/``get_paths_info``, ``repo_info`` and
``hf_hub_download``/``snapshot_download`` (``resolve`` with HEAD, ETag, X-Repo-Commit and Range). That is
enough for ``ModelCard.push_to_hub``, ``model.push_to_hub``, ``Trainer.push_to_hub`` (TRL trainers with
``push_to_hub=True``) and ``datasets.Dataset.push_to_hub`` / ``load_dataset``.

Limits: no git history (only the newest commit of ``main`` can be read; an older commit id is a
RevisionNotFound), no branches, tags, pull requests, Xet or multipart LFS, no pagination (one page).

Pointing clients at it. ``huggingface_hub`` reads ``HF_ENDPOINT`` once at import (into
``constants.ENDPOINT`` and the download URL template), builds a module-level ``HfApi`` then, and
``transformers``/``datasets`` keep their own copies. So:

* in another process: pass ``hub.env()`` as its environment (endpoint, token, Xet off, offline off);
* in-process (pytest): ``hub.patch_clients(monkeypatch, cache_dir)`` patches those constants, the shared
  ``HfApi`` instances, the offline flags and the caches, and monkeypatch undoes it all at teardown.
  The ``local_hub`` fixture in ``tests/conftest.py`` does this.

Fault injection: ``hub.fail_next("/preupload/", status=500, times=2)`` answers the next matching requests
with an error; ``hub.drop_next("/commit/")`` reads the request and closes the connection without an
answer. ``hub.requests`` lists ``(method, path, status)`` of every request (never headers, so never the
token). ``huggingface_hub`` retries some calls (preupload, LFS, downloads) on 5xx and dropped connections
with a 1 s back-off; the final commit POST is not retried.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import socket
import threading
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

USER = "local-user"
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API = re.compile(
    r"""^/api/(models|datasets|spaces)/([^/]+/[^/]+?)              # /api/models/{namespace}/{name}
        (?:/(revision|tree|paths-info|preupload|commit)           # optional action,
           (?:/([^/]*)(/.*)?)?)?/?$                               # then revision and a path (tree)""",
    re.VERBOSE,
)
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+?)(?:\.git)?/info/lfs/objects/batch$")
_LFS_PUT = re.compile(r"^/_lfs_upload/([0-9a-f]{64})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _safe_path(path: str) -> str:
    parts = path.strip("/").split("/")
    if not path or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return "/".join(parts)


class _Repo:
    """One repository: its current files under ``folder/files`` and a ``meta.json`` index."""

    def __init__(self, folder: Path, meta: dict):
        self.folder, self.meta = folder, meta

    @property
    def files(self) -> dict[str, dict]:
        return self.meta["files"]

    def save(self) -> None:
        (self.folder / "meta.json").write_text(json.dumps(self.meta, indent=1))

    def entry(self, path: str) -> dict:
        info = self.files[path]
        out = {"type": "file", "path": path, "size": info["size"], "oid": info["sha1"]}
        if info["lfs"]:
            out["lfs"] = {"oid": info["sha256"], "size": info["size"], "pointerSize": 134}
        return out

    def listing(self, prefix: str, recursive: bool) -> list[dict]:
        """Entries under ``prefix`` ('' = root), folders included, like the Hub's tree endpoint."""
        base = prefix + "/" if prefix else ""
        out: dict[str, dict] = {}
        for path in sorted(self.files):
            if not path.startswith(base):
                continue
            parts = path[len(base) :].split("/")
            for depth in range(1, len(parts)):
                folder = base + "/".join(parts[:depth])
                out.setdefault(folder, {"type": "directory", "path": folder, "oid": git_blob_sha1(folder.encode())})
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                out[path] = self.entry(path)
        return list(out.values())


class LocalHub:
    """``with LocalHub(root) as hub:`` serves repos stored under ``root`` at ``hub.endpoint``."""

    def __init__(self, root: str | Path, token: str | None = None, lfs_threshold: int = 10 * 1024 * 1024):
        self.root = Path(root)
        self.token = token or "hf_local_" + secrets.token_hex(16)
        self.lfs_threshold = lfs_threshold  # files this big, or with a NUL byte in their sample, go through LFS
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[str] = []  # tracebacks of requests that crashed the server (answered with 500)
        self._faults: list[dict] = []
        self._pending_lfs: set[str] = set()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.repos: dict[tuple[str, str], _Repo] = {}

    # ----- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LocalHub:
        (self.root / "_lfs").mkdir(parents=True, exist_ok=True)
        for meta_file in self.root.glob("*/*/*/meta.json"):  # repos kept from an earlier run
            meta = json.loads(meta_file.read_text())
            self.repos[(meta["type"], meta["id"])] = _Repo(meta_file.parent, meta)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._connections):  # idle keep-alive connections of the clients' pools
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "LocalHub is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment variables that point a fresh process (huggingface_hub, transformers, datasets) here."""
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": self.token,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }

    def patch_clients(self, monkeypatch, cache_dir: str | Path | None = None) -> None:
        """Point the already-imported clients of this process here (see the module docstring)."""
        from huggingface_hub import constants, hf_api

        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(constants, "ENDPOINT", self.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", self.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(hf_api.api, "endpoint", self.endpoint)  # behind huggingface_hub.upload_file & co
        if cache_dir is not None:
            monkeypatch.setattr(constants, "HF_HUB_CACHE", str(Path(cache_dir) / "hub"))
        try:
            import transformers.utils.hub as transformers_hub

            monkeypatch.setattr(transformers_hub, "_hf_api", None)  # rebuilt lazily with the patched endpoint
        except ImportError:
            pass
        try:
            import datasets.config as dsc

            monkeypatch.setattr(dsc, "HF_ENDPOINT", self.endpoint)
            monkeypatch.setattr(
                dsc, "HUB_DATASETS_URL", self.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
            )
            monkeypatch.setattr(dsc, "HF_HUB_OFFLINE", False)
            monkeypatch.setattr(dsc, "HF_DATASETS_OFFLINE", False)
            if cache_dir is not None:
                monkeypatch.setattr(dsc, "HF_DATASETS_CACHE", Path(cache_dir) / "datasets")
                monkeypatch.setattr(dsc, "DOWNLOADED_DATASETS_PATH", Path(cache_dir) / "datasets" / "downloads")
                monkeypatch.setattr(
                    dsc, "EXTRACTED_DATASETS_PATH", Path(cache_dir) / "datasets" / "downloads" / "extracted"
                )
        except ImportError:
            pass

    # ----- fault injection -----------------------------------------------------------------------
    def fail_next(self, path_substring: str, status: int = 500, times: int = 1, method: str | None = None) -> None:
        """Answer the next ``times`` requests whose path contains ``path_substring`` with ``status``."""
        with self._lock:
            self._faults.append({"match": path_substring, "method": method, "status": status, "left": times})

    def drop_next(self, path_substring: str, times: int = 1, method: str | None = None) -> None:
        """Read the next matching request(s), then close the connection without answering."""
        self.fail_next(path_substring, status=0, times=times, method=method)

    def _take_fault(self, method: str, path: str) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault["match"] in path and fault["method"] in (None, method):
                    fault["left"] -= 1
                    if fault["left"] <= 0:
                        self._faults.remove(fault)
                    return fault["status"]
        return None

    # ----- repositories --------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str, authed: bool) -> _Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.meta["private"] and not authed):
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def check_revision(self, repo: _Repo, revision: str) -> None:
        if unquote(revision) not in ("main", repo.meta["sha"]):
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")

    def create_repo(self, body: dict) -> tuple[int, dict]:
        repo_type = body.get("type") or "model"
        namespace, name = body.get("organization") or USER, body.get("name", "")
        if repo_type not in PREFIX or not _NAME.match(name) or not _NAME.match(namespace):
            raise HubError(400, f"Invalid repo name or type: {namespace}/{name} ({repo_type})")
        repo_id = f"{namespace}/{name}"
        url = f"{self.endpoint}/{PREFIX[repo_type]}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                # huggingface_hub reads "url" from this 409 answer when exist_ok=True
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", url=url)
            folder = self.root / f"{repo_type}s" / namespace / name
            (folder / "files").mkdir(parents=True, exist_ok=True)
            private = body.get("visibility") == "private" or body.get("private") is True
            sha = hashlib.sha1(f"{repo_type}/{repo_id}/{_now()}/{secrets.token_hex(4)}".encode()).hexdigest()
            meta = {"type": repo_type, "id": repo_id, "private": private, "sha": sha, "createdAt": _now()}
            meta.update(lastModified=meta["createdAt"], files={}, commits=[{"id": sha, "title": "initial commit"}])
            self.repos[(repo_type, repo_id)] = repo = _Repo(folder, meta)
            repo.save()
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def delete_repo(self, body: dict) -> tuple[int, dict]:
        repo_type, repo_id = body.get("type") or "model", f"{body.get('organization') or USER}/{body.get('name')}"
        with self._lock:
            repo = self.repo(repo_type, repo_id, authed=True)
            del self.repos[(repo_type, repo_id)]
            shutil.rmtree(repo.folder, ignore_errors=True)
        return 200, {}

    def repo_info(self, repo: _Repo) -> dict:
        with self._lock:
            meta, siblings = dict(repo.meta), [{"rfilename": path} for path in sorted(repo.files)]
        return {
            "id": meta["id"],
            "author": meta["id"].split("/")[0],
            "sha": meta["sha"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "createdAt": meta["createdAt"],
            "lastModified": meta["lastModified"],
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": siblings,
        }

    def preupload(self, repo: _Repo, body: dict) -> dict:
        files = []
        for item in body.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            size = int(item.get("size", 0))
            lfs = size > 0 and (size >= self.lfs_threshold or b"\0" in sample)
            existing = repo.files.get(item["path"])
            oid = None if existing is None else existing["sha256" if existing["lfs"] else "sha1"]
            files.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return {"files": files, "commitOid": repo.meta["sha"]}

    def lfs_batch(self, body: dict) -> dict:
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), int(obj.get("size", 0))
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "bad oid"}})
            elif (self.root / "_lfs" / oid).exists():
                objects.append({"oid": oid, "size": size})  # already stored: no action needed
            else:
                with self._lock:
                    self._pending_lfs.add(oid)
                upload = {"href": f"{self.endpoint}/_lfs_upload/{oid}", "header": {}}
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload}})
        return {"transfer": "basic", "objects": objects}

    def lfs_store(self, oid: str, data: bytes) -> None:
        with self._lock:
            if oid not in self._pending_lfs:
                raise HubError(403, "No LFS upload was announced for this object")
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "LFS object does not match its sha256")
        tmp = self.root / "_lfs" / f"{oid}.{secrets.token_hex(4)}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.root / "_lfs" / oid)
        with self._lock:
            self._pending_lfs.discard(oid)

    def commit(self, repo: _Repo, revision: str, body: bytes) -> dict:
        if unquote(revision) != "main":
            raise HubError(400, "LocalHub only supports commits to the main branch", "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), {})
        with self._lock:
            parent = header.get("parentCommit")
            if parent and parent != repo.meta["sha"]:
                raise HubError(412, f"Parent commit {parent} is not the head of main ({repo.meta['sha']})")
            writes: dict[str, bytes | Path] = {}
            deletes: set[str] = set()
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    writes[_safe_path(value["path"])] = base64.b64decode(value["content"])
                elif key == "lfsFile":
                    blob = self.root / "_lfs" / value["oid"]
                    if not blob.exists():
                        raise HubError(422, f"LFS object {value['oid']} was not uploaded")
                    writes[_safe_path(value["path"])] = blob
                elif key == "deletedFile":
                    path = _safe_path(value["path"])
                    if path not in repo.files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    deletes.add(path)
                elif key == "deletedFolder":
                    prefix = _safe_path(value["path"]) + "/"
                    deletes.update(p for p in repo.files if p.startswith(prefix))
                elif key != "header":
                    raise HubError(400, f"Unsupported commit operation: {key}")
            for path in deletes:
                (repo.folder / "files" / path).unlink(missing_ok=True)
                del repo.files[path]
            for path, source in writes.items():
                target = repo.folder / "files" / path
                target.parent.mkdir(parents=True, exist_ok=True)
                data = source.read_bytes() if isinstance(source, Path) else source
                target.write_bytes(data)
                info = {"size": len(data), "sha1": git_blob_sha1(data), "sha256": hashlib.sha256(data).hexdigest()}
                repo.files[path] = {**info, "lfs": isinstance(source, Path)}
            title = header.get("summary") or "commit"
            sha = hashlib.sha1(
                f"{repo.meta['sha']}\n{title}\n{json.dumps(repo.files, sort_keys=True)}\n{_now()}".encode()
            ).hexdigest()
            repo.meta.update(sha=sha, lastModified=_now())
            repo.meta["commits"].append({"id": sha, "title": title, "date": repo.meta["lastModified"]})
            repo.save()
        url = f"{self.endpoint}/{PREFIX[repo.meta['type']]}{repo.meta['id']}/commit/{sha}"
        return {"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub
    timeout = 60
    server_version = "LocalHub/1.0"

    # Only method, path and status are recorded: never headers, so the token never reaches a log.
    def log_request(self, code="-", size="-") -> None:
        hub: LocalHub = self.server.hub  # type: ignore[attr-defined]
        hub.requests.append((self.command, urlsplit(self.path).path, int(code) if isinstance(code, int) else 0))

    def log_message(self, format, *args) -> None:  # noqa: A002 (silence the default stderr log)
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.hub._lock:  # type: ignore[attr-defined]
            self.server.hub._connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        with self.server.hub._lock:  # type: ignore[attr-defined]
            self.server.hub._connections.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = lambda self: self._handle()  # noqa: E731

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):  # huggingface_hub always sends a Content-Length
            raise HubError(411, "LocalHub needs a Content-Length")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes | dict | list, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        headers.setdefault("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, error: HubError, headers: dict | None = None) -> None:
        extra = {"X-Error-Message": error.message.encode("latin-1", "replace").decode("latin-1"), **(headers or {})}
        if error.code:
            extra["X-Error-Code"] = error.code
        self._send(error.status, {"error": error.message, **error.extra}, extra)

    def _handle(self) -> None:
        hub: LocalHub = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except HubError as error:
            self.close_connection = True
            return self._error(error)
        fault = hub._take_fault(self.command, url.path)
        if fault == 0:  # drop: no status line, no headers, just a closed socket
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            hub.requests.append((self.command, url.path, 0))
            return
        if fault is not None:
            return self._error(HubError(fault, f"Injected failure ({fault}) for {url.path}"))
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token is not None and not secrets.compare_digest(token.encode(), hub.token.encode()):
            return self._error(HubError(401, "Invalid credentials in Authorization header"))
        try:
            self._route(hub, url.path, parse_qs(url.query), body, authed=token is not None)
        except HubError as error:
            self._error(error)
        except Exception as error:  # a server bug or a malformed request: answer it, keep the traceback
            hub.errors.append(traceback.format_exc())
            self._error(HubError(500, f"LocalHub internal error: {type(error).__name__}: {error}"))

    def _require_auth(self, authed: bool) -> None:
        if not authed:
            raise HubError(401, "You must be authenticated to write to the Hub (no token sent)")

    def _route(self, hub: LocalHub, path: str, query: dict, body: bytes, authed: bool) -> None:
        method = self.command
        if path == "/api/whoami-v2" and method == "GET":
            self._require_auth(authed)
            token = {"displayName": "local-hub", "role": "write", "createdAt": _now()}
            user = {"type": "user", "id": "0" * 24, "name": USER, "fullname": "Local Test User", "orgs": []}
            return self._send(200, {**user, "auth": {"type": "access_token", "accessToken": token}})
        if path == "/api/validate-yaml" and method == "POST":
            return self._send(200, {"errors": [], "warnings": []})
        if path in ("/api/repos/create", "/api/repos/delete") and method in ("POST", "DELETE"):
            self._require_auth(authed)
            action = hub.create_repo if path.endswith("create") else hub.delete_repo
            return self._send(*action(json.loads(body or b"{}")))
        if match := _LFS_PUT.match(path):
            if method != "PUT":
                raise HubError(405, "Method not allowed")
            hub.lfs_store(match.group(1), body)
            return self._send(200, b"", {"ETag": f'"{match.group(1)}"'})
        if match := _LFS_BATCH.match(path):
            self._require_auth(authed)
            hub.repo((match.group(1) or "models")[:-1], match.group(2), authed)
            return self._send(200, hub.lfs_batch(json.loads(body)), {"Content-Type": "application/vnd.git-lfs+json"})
        if match := _RESOLVE.match(path):
            repo = hub.repo((match.group(1) or "models")[:-1], match.group(2), authed)
            return self._resolve(hub, repo, revision=match.group(3), filename=unquote(match.group(4)))
        match = _API.match(path)
        if match is None:
            raise HubError(404, f"LocalHub does not implement {method} {path}")
        kind, repo_id, action, revision, rest = match.groups()
        repo = hub.repo(kind[:-1], repo_id, authed)
        if action is None or action == "revision":
            hub.check_revision(repo, revision or "main")
            return self._send(200, hub.repo_info(repo))
        if action in ("preupload", "commit"):
            self._require_auth(authed)
            if "create_pr" in query:
                raise HubError(400, "LocalHub does not support pull requests")
            hub.check_revision(repo, revision or "main")
            result = (
                hub.preupload(repo, json.loads(body)) if action == "preupload" else hub.commit(repo, revision, body)
            )
            return self._send(200, result)
        hub.check_revision(repo, revision or "main")
        with hub._lock:
            if action == "tree":
                prefix = unquote(rest or "").strip("/")
                entries = repo.listing(prefix, query.get("recursive", ["false"])[0].lower() in ("1", "true"))
                if prefix and not entries:
                    raise HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
                return self._send(200, entries)
            # paths-info: form-encoded (huggingface_hub) or JSON body
            is_json = self.headers.get("Content-Type", "").startswith("application/json")
            paths = json.loads(body).get("paths", []) if is_json else parse_qs(body.decode()).get("paths", [])
            found = []
            for item in paths if isinstance(paths, list) else [paths]:
                item = item.strip("/")
                if item in repo.files:
                    found.append(repo.entry(item))
                elif any(p.startswith(item + "/") for p in repo.files):
                    found.append({"type": "directory", "path": item, "oid": git_blob_sha1(item.encode())})
            return self._send(200, found)

    def _resolve(self, hub: LocalHub, repo: _Repo, revision: str, filename: str) -> None:
        hub.check_revision(repo, revision)
        with hub._lock:
            sha, info = repo.meta["sha"], repo.files.get(filename)
            if info is None:
                return self._error(HubError(404, "Entry not found", "EntryNotFound"), {"X-Repo-Commit": sha})
            data = b"" if self.command == "HEAD" else (repo.folder / "files" / filename).read_bytes()
        etag = f'"{info["sha256"] if info["lfs"] else info["sha1"]}"'
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": etag,
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
        }
        if info["lfs"]:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(info["size"])})
        if self.command == "HEAD":
            return self._send(200, b"", {**headers, "Content-Length": str(info["size"])})
        status = 200
        if match := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip()):  # resumed downloads
            start, end = int(match.group(1)), min(int(match.group(2) or len(data) - 1), len(data) - 1)
            if start >= len(data) > 0:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, headers)
