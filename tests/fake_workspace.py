"""A fake Databricks workspace on loopback HTTP, shared by tests/integration/test_remote.py and test_bundle_cli.py.

``serve(FakeWorkspace())`` starts a small ``http.server`` on 127.0.0.1 (port 0) in a daemon thread; clients reach it
with the standard configuration: ``DATABRICKS_HOST=<fake.host>``, ``DATABRICKS_TOKEN=TOKEN`` and an empty
``DATABRICKS_CONFIG_FILE``. It answers the REST endpoints the project's clients call and nothing else (any other
endpoint is a 404 ``ENDPOINT_NOT_FOUND``, recorded in ``fake.unknown_endpoints``, so a new call shows up; every
request is kept in ``fake.requests``):

- ``GET /.well-known/databricks-config``: the host metadata of a workspace on AWS (SDK and CLI host discovery),
  without authentication, like the real one.
- SCIM ``GET /api/2.0/preview/scim/v2/Me``: the signed-in identity (``fake.sign_in`` sets it, a user or a service
  principal, whose user name is its application ID).
- Jobs API 2.2 (``ecom remote``): ``jobs/list``, ``jobs/get``, ``run-now``, ``runs/get`` (advancing the run on every
  poll), ``runs/get-output``, ``runs/list``, ``runs/cancel``.
- SQL Statement Execution API (``ecom remote report``): statements, polling, cancel, result chunks.
- Workspace file tree (``databricks bundle validate`` / ``plan``): ``workspace/get-status`` and
  ``workspace/mkdirs`` on a tree holding ``/``, ``/Users`` and the signed-in identity's home folder, and
  ``permissions/directories/<id>`` returning each folder's ACL with what it inherits: admins manage ``/``, the owner
  manages their home folder. Paths are accepted with and without the ``/Workspace`` prefix, as the real API does.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "dapi-test-token"
USER_NAME = "Jane.Doe@example.com"
TASKS = ("bronze_ingest", "silver_dimensions", "silver_orders", "gold_aggregates", "profit_report")
WORKSPACE_ID = "1234567890123456"
TASK_ERROR = "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `silver.customers` cannot be found."


# ----------------------------------------------------------------------------------------------------------------
# Job runs and SQL results.
# ----------------------------------------------------------------------------------------------------------------


def _state(life: str, result: str | None = None, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"life_cycle_state": life, "state_message": message}
    if result:
        state["result_state"] = result
    return state


def phases(outcome: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(run state, task states) per poll: PENDING, then the tasks one after the other, then TERMINATED."""
    pending = _state("PENDING")
    out = [(_state("PENDING"), [pending] * len(TASKS))]
    if outcome == "forever":
        return [*out, (_state("RUNNING"), [_state("RUNNING")] + [pending] * (len(TASKS) - 1))]
    failing = TASKS.index("silver_orders") if outcome == "fail" else None
    done: list[dict[str, Any]] = []
    for i in range(len(TASKS)):
        if failing is not None and i == failing:
            failed = _state("TERMINATED", "FAILED", "Workload failed, see run output for details")
            upstream = [_state("SKIPPED", "UPSTREAM_FAILED")] * (len(TASKS) - i - 1)
            out.append((_state("RUNNING"), [*done, _state("RUNNING"), *[pending] * (len(TASKS) - i - 1)]))
            out.append((_state("TERMINATED", "FAILED", "Task silver_orders failed."), [*done, failed, *upstream]))
            return out
        out.append((_state("RUNNING"), [*done, _state("RUNNING"), *[pending] * (len(TASKS) - i - 1)]))
        done.append(_state("TERMINATED", "SUCCESS"))
    out.append((_state("TERMINATED", "SUCCESS"), done))
    return out


@dataclass
class FakeRun:
    run_id: int
    job_id: int
    outcome: str
    polls: int = 0
    cancelled: bool = False


@dataclass
class FakeTable:
    columns: list[tuple[str, str, str]]  # name, type_name, type_text
    rows: list[list[str | None]]
    chunk_size: int = 1000


# ----------------------------------------------------------------------------------------------------------------
# The workspace file tree.
# ----------------------------------------------------------------------------------------------------------------


def is_service_principal(user_name: str) -> bool:
    """A service principal's user name is its application ID (a UUID); the Databricks CLI tells them apart so."""
    try:
        uuid.UUID(user_name)
    except ValueError:
        return False
    return True


def principal(name: str) -> dict[str, str]:
    """The ACL key of a user (e-mail), service principal (application ID) or group (anything else)."""
    if is_service_principal(name):
        return {"service_principal_name": name}
    if "@" in name:
        return {"user_name": name}
    return {"group_name": name}


def canonical_path(path: str) -> str:
    """``/Workspace/Users/x`` and ``/Users/x`` name the same object; the tree stores the latter."""
    path = "/" + path.strip("/")
    if path == "/Workspace":
        return "/"
    return path.removeprefix("/Workspace") if path.startswith("/Workspace/") else path


@dataclass
class WorkspaceObject:
    path: str  # canonical
    object_type: str  # DIRECTORY, FILE, NOTEBOOK
    object_id: int
    acl: list[tuple[dict[str, str], str]] = field(default_factory=list)  # explicit (principal, level) entries

    def status(self) -> dict[str, Any]:
        return {"path": self.path, "object_type": self.object_type, "object_id": self.object_id}


# ----------------------------------------------------------------------------------------------------------------
# The fake workspace.
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class FakeWorkspace:
    host: str = ""
    me: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[int, FakeRun] = field(default_factory=dict)
    next_outcome: str = "success"
    statements: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, FakeTable] = field(default_factory=dict)
    failing_statements: dict[str, str] = field(default_factory=dict)
    stuck_statements: set[str] = field(default_factory=set)
    broken_poll: int | None = None  # runs/get answers 500 from this poll on
    objects: dict[str, WorkspaceObject] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    unknown_endpoints: list[tuple[str, str]] = field(default_factory=list)  # requests answered ENDPOINT_NOT_FOUND
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 600_000)

    def __post_init__(self) -> None:
        root = self.add_object("/", "DIRECTORY")
        root.acl.append((principal("admins"), "CAN_MANAGE"))
        self.add_object("/Users", "DIRECTORY")
        if not self.me:
            self.sign_in(USER_NAME, "Jane Doe")

    def host_metadata(self) -> dict[str, Any]:
        """What a workspace on AWS answers at /.well-known/databricks-config (the SDKs' host discovery)."""
        return {
            "oidc_endpoint": f"{self.host}/oidc",
            "workspace_id": WORKSPACE_ID,
            "cloud": "aws",
            "host_type": "WORKSPACE_HOST",
        }

    def calls(self, method: str, path_prefix: str) -> list[Any]:
        return [body for m, p, body in self.requests if m == method and p.startswith(path_prefix)]

    def endpoints(self) -> set[tuple[str, str]]:
        """Every (method, path) requested, with numeric IDs in paths replaced by ``<id>``."""
        return {(m, re.sub(r"/\d+(?=/|$)", "/<id>", p)) for m, p, _ in self.requests}

    # --- identity and folders -----------------------------------------------------------------------------------

    def sign_in(self, user_name: str, display_name: str | None = None, groups: tuple[str, ...] = ("users",)) -> None:
        """Make ``user_name`` the identity SCIM Me returns, with a home folder it manages (CAN_MANAGE)."""
        self.me = {
            "id": str(1000 + len(self.objects)),
            "userName": user_name,
            "displayName": display_name or user_name,
            "active": True,
            "groups": [{"display": g, "value": str(2000 + i)} for i, g in enumerate(groups)],
        }
        home = self.objects.get(f"/Users/{user_name}") or self.add_object(f"/Users/{user_name}", "DIRECTORY")
        if not home.acl:
            home.acl.append((principal(user_name), "CAN_MANAGE"))

    def add_object(self, path: str, object_type: str) -> WorkspaceObject:
        path = canonical_path(path)
        obj = WorkspaceObject(path, object_type, object_id=4_000_000 + len(self.objects))
        self.objects[path] = obj
        return obj

    def mkdirs(self, path: str) -> None:
        path = canonical_path(path)
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            current = "/" + "/".join(parts[:i])
            existing = self.objects.get(current)
            if existing is None:
                self.add_object(current, "DIRECTORY")
            elif existing.object_type != "DIRECTORY":
                raise WorkspaceError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({current}) already exists as a file.")

    def get_status(self, path: str) -> dict[str, Any]:
        obj = self.objects.get(canonical_path(path))
        if obj is None:
            raise WorkspaceError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")
        return obj.status()

    def directory_permissions(self, object_id: int) -> dict[str, Any]:
        """A folder's ACL: its own entries, then those it inherits from every parent folder."""
        obj = next((o for o in self.objects.values() if o.object_id == object_id), None)
        if obj is None or obj.object_type != "DIRECTORY":
            raise WorkspaceError(404, "RESOURCE_DOES_NOT_EXIST", f"Directory {object_id} does not exist.")
        chain, path = [obj], obj.path
        while path != "/":
            path = path.rsplit("/", 1)[0] or "/"
            if path in self.objects:
                chain.append(self.objects[path])
        entries: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for source in chain:
            for who, level in source.acl:
                entry = entries.setdefault(tuple(sorted(who.items())), {**who, "all_permissions": []})
                permission: dict[str, Any] = {"permission_level": level, "inherited": source is not obj}
                if source is not obj:
                    permission["inherited_from_object"] = [f"/directories/{source.object_id}"]
                entry["all_permissions"].append(permission)
        return {
            "object_id": f"/directories/{obj.object_id}",
            "object_type": "directory",
            "access_control_list": list(entries.values()),
        }

    # --- jobs ---------------------------------------------------------------------------------------------------

    def add_job(self, job_id: int, name: str) -> None:
        self.jobs.append({"job_id": job_id, "settings": {"name": name}, "created_time": self.base_ms})

    def add_run(self, job_id: int, outcome: str) -> int:
        run_id = 501 + len(self.runs)
        self.runs[run_id] = FakeRun(run_id, job_id, outcome)
        return run_id

    def run_json(self, run: FakeRun, *, advance: bool) -> dict[str, Any]:
        steps = phases(run.outcome)
        run_state, task_states = steps[min(run.polls, len(steps) - 1)]
        if advance:
            run.polls += 1
        tasks = []
        for i, (key, state) in enumerate(zip(TASKS, task_states, strict=True)):
            task: dict[str, Any] = {"task_key": key, "run_id": run.run_id * 10 + i, "attempt_number": 0, "state": state}
            if state["life_cycle_state"] != "PENDING":
                task["start_time"] = self.base_ms + i * 60_000
            if state["life_cycle_state"] == "TERMINATED":
                task["end_time"] = self.base_ms + i * 60_000 + 45_000
            tasks.append(task)
        job_name = next(j["settings"]["name"] for j in self.jobs if j["job_id"] == run.job_id)
        body = {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "run_name": job_name,
            "run_page_url": f"{self.host}/?o=1#job/{run.job_id}/run/{run.run_id}",
            "state": run_state,
            "tasks": tasks,
            "start_time": self.base_ms,
        }
        if run_state["life_cycle_state"] == "TERMINATED":
            body["end_time"] = self.base_ms + 305_000
        return body

    # --- SQL ----------------------------------------------------------------------------------------------------

    def statement_json(self, statement_id: str, *, advance: bool) -> dict[str, Any]:
        info = self.statements[statement_id]
        if advance:
            info["polls"] += 1
        if info["polls"] == 0:
            return {"statement_id": statement_id, "status": {"state": "PENDING"}}
        name = info["name"]
        if info["polls"] == 1 or name in self.stuck_statements:
            return {"statement_id": statement_id, "status": {"state": "RUNNING"}}
        if name in self.failing_statements:
            error = {"error_code": "BAD_REQUEST", "message": self.failing_statements[name]}
            return {"statement_id": statement_id, "status": {"state": "FAILED", "error": error, "sql_state": "42P01"}}
        table = self.tables[name]
        chunks = self.chunks(table)
        manifest = {
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": len(table.columns),
                "columns": [
                    {"name": n, "type_name": t, "type_text": text, "position": i}
                    for i, (n, t, text) in enumerate(table.columns)
                ],
            },
            "total_chunk_count": len(chunks),
            "total_row_count": len(table.rows),
            "chunks": [{"chunk_index": i, "row_count": len(c)} for i, c in enumerate(chunks)],
            "truncated": False,
        }
        return {
            "statement_id": statement_id,
            "status": {"state": "SUCCEEDED"},
            "manifest": manifest,
            "result": self.chunk_json(statement_id, table, 0),
        }

    @staticmethod
    def chunks(table: FakeTable) -> list[list[list[str | None]]]:
        rows = table.rows
        return [rows[i : i + table.chunk_size] for i in range(0, len(rows), table.chunk_size)] or [[]]

    def chunk_json(self, statement_id: str, table: FakeTable, index: int) -> dict[str, Any]:
        chunks = self.chunks(table)
        offset = sum(len(c) for c in chunks[:index])
        body: dict[str, Any] = {
            "chunk_index": index,
            "row_offset": offset,
            "row_count": len(chunks[index]),
            "data_array": chunks[index],
        }
        if index + 1 < len(chunks):
            body["next_chunk_index"] = index + 1
            body["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{statement_id}/result/chunks/{index + 1}"
        return body


class WorkspaceError(Exception):
    """An API error reply: HTTP status, error_code and message."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


# ----------------------------------------------------------------------------------------------------------------
# HTTP.
# ----------------------------------------------------------------------------------------------------------------


def _handler(fake: FakeWorkspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # silence the per-request log
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            with fake.lock:
                fake.requests.append((method, url.path, body if method != "GET" else query))
                if url.path == "/.well-known/databricks-config":
                    return self._send(200, fake.host_metadata())
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    status = 403 if "forbidden" in (self.headers.get("Authorization") or "") else 401
                    return self._send(status, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
                try:
                    status, reply = self._route(method, url.path, query, body if isinstance(body, dict) else {})
                except WorkspaceError as exc:
                    status, reply = exc.status, {"error_code": exc.error_code, "message": exc.message}
                except KeyError as exc:
                    status, reply = 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"not found: {exc}"}
                return self._send(status, reply)

        def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
            if (method, path) == ("GET", "/api/2.0/preview/scim/v2/Me"):
                return 200, fake.me
            if (method, path) == ("GET", "/api/2.0/workspace/get-status"):
                return 200, fake.get_status(query["path"])
            if (method, path) == ("POST", "/api/2.0/workspace/mkdirs"):
                fake.mkdirs(body["path"])
                return 200, {}
            directory = re.fullmatch(r"/api/2\.0/permissions/directories/(\d+)", path)
            if method == "GET" and directory:
                return 200, fake.directory_permissions(int(directory.group(1)))
            if (method, path) == ("GET", "/api/2.2/jobs/list"):
                name = query.get("name")
                jobs = [j for j in fake.jobs if name is None or j["settings"]["name"].casefold() == name.casefold()]
                return 200, {"jobs": jobs, "has_more": False} if jobs else {"has_more": False}
            if (method, path) == ("GET", "/api/2.2/jobs/get"):
                job = next((j for j in fake.jobs if j["job_id"] == int(query["job_id"])), None)
                if job is None:
                    return 400, {
                        "error_code": "INVALID_PARAMETER_VALUE",
                        "message": f"Job {query['job_id']} does not exist.",
                    }
                return 200, job
            if (method, path) == ("POST", "/api/2.2/jobs/run-now"):
                run_id = fake.add_run(body["job_id"], fake.next_outcome)
                return 200, {"run_id": run_id, "number_in_job": run_id}
            if (method, path) == ("GET", "/api/2.2/jobs/runs/get"):
                run = fake.runs[int(query["run_id"])]
                if fake.broken_poll is not None and run.polls >= fake.broken_poll:
                    return 500, {"error_code": "INTERNAL_ERROR", "message": "Internal server error"}
                return 200, fake.run_json(run, advance=True)
            if (method, path) == ("GET", "/api/2.2/jobs/runs/list"):
                runs = sorted(
                    (r for r in fake.runs.values() if r.job_id == int(query["job_id"])), key=lambda r: -r.run_id
                )
                limit = int(query.get("limit", 20))
                return 200, {"runs": [fake.run_json(r, advance=False) for r in runs[:limit]], "has_more": False}
            if (method, path) == ("GET", "/api/2.2/jobs/runs/get-output"):
                task_run_id = int(query["run_id"])
                run = fake.runs[task_run_id // 10]
                key = TASKS[task_run_id % 10]
                error = TASK_ERROR if run.outcome == "fail" and key == "silver_orders" else None
                output: dict[str, Any] = {"metadata": {"run_id": task_run_id, "task_key": key}}
                if error:
                    output |= {"error": error, "error_trace": "Traceback (most recent call last):\n  ...\n" + error}
                return 200, output
            if (method, path) == ("POST", "/api/2.2/jobs/runs/cancel"):
                fake.runs[int(body["run_id"])].cancelled = True
                return 200, {}
            if (method, path) == ("POST", "/api/2.0/sql/statements"):
                match = re.search(r"\bFROM\s+(\w+)", body["statement"], re.IGNORECASE)
                statement_id = f"01ef-{len(fake.statements) + 1:04d}"
                fake.statements[statement_id] = {"name": match.group(1) if match else "?", "polls": 0}
                return 200, fake.statement_json(statement_id, advance=False)
            cancel = re.fullmatch(r"/api/2\.0/sql/statements/([\w-]+)/cancel", path)
            if method == "POST" and cancel:
                fake.statements[cancel.group(1)]["cancelled"] = True
                return 200, {}
            chunk = re.fullmatch(r"/api/2\.0/sql/statements/([\w-]+)/result/chunks/(\d+)", path)
            if method == "GET" and chunk:
                statement_id, index = chunk.group(1), int(chunk.group(2))
                table = fake.tables[fake.statements[statement_id]["name"]]
                return 200, fake.chunk_json(statement_id, table, index)
            statement = re.fullmatch(r"/api/2\.0/sql/statements/([\w-]+)", path)
            if method == "GET" and statement:
                return 200, fake.statement_json(statement.group(1), advance=True)
            fake.unknown_endpoints.append((method, path))
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no endpoint {method} {path}"}

    return Handler


@contextmanager
def serve(fake: FakeWorkspace) -> Iterator[FakeWorkspace]:
    """Serve ``fake`` on 127.0.0.1 (a free port) while the block runs; ``fake.host`` is its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
