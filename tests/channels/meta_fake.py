"""A fake of Meta's Graph API custom-audience endpoints on a threaded pytest-httpserver,
checking what Meta checks and what Herald's contract adds, so an exporter that passes it
sends what the real API takes:

- `POST /{version}/{audience_id}/users` and `/usersreplace`, the token as `Authorization:
  Bearer` or an `access_token` parameter, the body as JSON or as form fields holding JSON
  (`payload`, `session`), as the Graph API takes either;
- the payload: a known schema (one key, or a multi-key list), every row as wide as the
  schema, 1 to 10,000 rows; hashed keys 64 lowercase hex (others are counted in
  num_invalid_entries with samples, as Meta does, and noted as a problem); EXTERN_ID not
  hashed (Herald's contract: it must match the ids the advertiser uses elsewhere);
- the session: session_id a positive int64, batch_seq from 1 going up by one (a repeat of
  the last one is a retry and is taken), estimated_num_total constant, nothing after
  last_batch_flag, one session at a time per audience; for a replace Meta's own 2650
  errors (1870147 no first batch, 1870145 another replace running, 1870159 finished);
- `GET /{version}/{audience_id}?fields=operation_status` (471 when flagged).

What it took is kept (`batches`, `members`), what broke the contract is listed in
`problems` (a test asserts it empty), and switches make it answer like Meta does when
things go wrong: a Graph error at batch N, a flagged audience, throttling once, an HTML
error page, a request held past the client's timeout, an expired token."""

import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.channels.conftest import free_port

TOKEN = "EAAHerald-test-token"
HEX64 = re.compile(r"[0-9a-f]{64}")
SINGLE_KEYS = {"EMAIL_SHA256", "PHONE_SHA256", "MOBILE_ADVERTISER_ID", "EXTERN_ID", "UID"}
MULTI_KEYS = {
    "EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST",
    "ZIP", "MADID", "COUNTRY", "LOOKALIKE_VALUE",
}  # fmt: skip
UNHASHED_KEYS = {"EXTERN_ID", "MADID", "MOBILE_ADVERTISER_ID", "UID", "LOOKALIKE_VALUE"}
PATH = re.compile(r"^/(v\d+\.\d+)/(\d+)(?:/(users|usersreplace))?$")


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    kind="OAuthException",
    title: str = "",
    user_msg: str = "",
    transient: bool | None = None,
) -> dict:
    """Graph's error body."""  # fmt: skip
    error = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if title:
        error["error_user_title"] = title
    if user_msg:
        error["error_user_msg"] = user_msg
    if transient is not None:
        error["is_transient"] = transient
    return {"error": error}


EXPIRED = graph_error(
    190, "Error validating access token: Session has expired on Monday, 30-Nov-26 09:00:00 "
    "PST. The current time is Thursday, 03-Dec-26 07:55:00 PST.", subcode=463,
)  # fmt: skip
FLAGGED = graph_error(
    100, "Invalid parameter", subcode=1713230, title="Audience Upload Blocked",
    user_msg="Before updating user memberships, you must resolve integrity restrictions on "
    "this Data File Custom Audience. Go to Audience Manager to appeal the restrictions or "
    "create a new audience with updated data",
)  # fmt: skip
THROTTLED = graph_error(
    80003, "There have been too many calls to this ad-account. Wait a bit and try again. "
    "For more info, please refer to /docs/graph-api/overview/rate-limiting#custom-audience.",
    subcode=2446079, transient=True,
)  # fmt: skip
PERMISSION = graph_error(
    200, "(#200) Permissions error", subcode=1870050, kind="OAuthException",
)  # fmt: skip
SOMETHING_WRONG = graph_error(2650, "Failed to update the custom audience", subcode=1870148)
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"


@dataclass
class Batch:
    edge: str  # users | usersreplace
    audience_id: str
    version: str
    session: dict
    schema: list
    rows: list
    retry: bool = False  # the same batch_seq again: a client's retry


@dataclass
class Session:
    session_id: int
    edge: str
    estimated_num_total: int | None
    last_seq: int = 0
    received: int = 0
    finished: bool = False
    staged: list = field(default_factory=list)  # a replace's rows until it finishes


@dataclass
class Fault:
    batch_seq: int
    times: int
    answer: tuple  # (status, body dict or str, content type) or ("timeout", seconds)


def json_response(status: int, body) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class FakeGraph:
    def __init__(self, server: HTTPServer, *, token: str = TOKEN, min_version: int = 23):
        self.token = token
        self.min_version = min_version
        self.base_url = server.url_for("/").rstrip("/")
        self.lock = threading.Lock()
        self.batches: list[Batch] = []  # every batch taken, in order (retries included)
        self.refused: list[tuple[int | None, str]] = []  # (batch_seq, why) of each refusal
        self.problems: list[str] = []  # contract violations by the client
        self.members: dict[str, list] = {}  # audience id -> rows it holds
        self.status: dict[str, str] = {}  # audience id -> replace state, when not Normal
        self.sessions: dict[str, Session] = {}  # audience id -> its current session
        self.flagged: set[str] = set()
        self.token_expired = False
        self.faults: list[Fault] = []
        server.expect_request(PATH).respond_with_handler(self.handle)

    # --- switches -----------------------------------------------------------------------

    def fail_at(
        self,
        batch_seq: int,
        body: dict = SOMETHING_WRONG,
        *,
        status: int = 400,
        times: int = 1_000_000,
    ):
        """Answer a Graph error to batch `batch_seq` (every time, unless `times`)."""  # fmt: skip
        self.faults.append(Fault(batch_seq, times, (status, body, "application/json")))

    def throttle_once(self, batch_seq: int, body: dict = THROTTLED):
        self.fail_at(batch_seq, body, status=400, times=1)

    def html_at(self, batch_seq: int, *, times: int = 1, status: int = 502):
        self.faults.append(Fault(batch_seq, times, (status, HTML_502, "text/html")))

    def timeout_at(self, batch_seq: int, *, seconds: float, times: int = 1):
        """Hold the request `seconds` (past the client's timeout), then drop it unread."""
        self.faults.append(Fault(batch_seq, times, ("timeout", seconds)))

    def flag(self, audience_id: str):
        self.flagged.add(str(audience_id))

    def expire_token(self):
        self.token_expired = True

    def time_out_sessions(self):
        """What Meta does 90 minutes after a replace session's first batch when it never
        saw last_batch_flag: the audience becomes what was uploaded so far."""
        with self.lock:
            for audience_id, session in self.sessions.items():
                if session.edge == "usersreplace" and not session.finished:
                    session.finished = True
                    self.members[audience_id] = list(session.staged)
                    self.status[audience_id] = "replace_error"

    # --- reading what it got ------------------------------------------------------------

    def taken(self, audience_id: str | None = None) -> list[Batch]:
        """The batches taken, retries left out."""
        return [
            b
            for b in self.batches
            if not b.retry and (audience_id is None or b.audience_id == audience_id)
        ]

    def seqs(self) -> list[int]:
        return [b.session["batch_seq"] for b in self.taken()]

    # --- the endpoints ------------------------------------------------------------------

    def handle(self, request):
        version, audience_id, edge = PATH.match(request.path).groups()
        if refused := self._check_token(request):
            return refused
        if int(version[1:].split(".")[0]) < self.min_version:
            return json_response(400, graph_error(
                2635, f"(#2635) You are calling a deprecated version of the Ads API. Please "
                f"update to the latest version: v{self.min_version}.0.", kind="OAuthException",
            ))  # fmt: skip
        if edge is None:
            return self._node(request, audience_id)
        if request.method != "POST":
            return json_response(400, graph_error(100, "Unsupported get request."))
        try:
            params = self._params(request)
            payload, session = params.get("payload"), params.get("session")
            if isinstance(payload, str):
                payload = json.loads(payload)
            if isinstance(session, str):
                session = json.loads(session)
        except ValueError:
            return self._refuse(None, 400, graph_error(100, "(#100) Invalid JSON for payload"))
        batch_seq = session.get("batch_seq") if isinstance(session, dict) else None
        if fault := self._fault(batch_seq):
            if fault[0] == "timeout":
                time.sleep(fault[1])
                return Response("", status=504)  # the client has long gone
            status, body, content_type = fault
            text = body if isinstance(body, str) else json.dumps(body)
            self._note_refusal(batch_seq, f"fault {status}")
            return Response(text, status=status, content_type=content_type)
        if audience_id in self.flagged:
            return self._refuse(batch_seq, 400, FLAGGED)
        with self.lock:
            return self._take(version, audience_id, edge, payload, session)

    def _check_token(self, request):
        bearer = request.headers.get("Authorization", "")
        token = bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else ""
        token = token or request.args.get("access_token") or request.form.get("access_token", "")
        if not token:
            return json_response(400, graph_error(
                104, "An access token is required to request this resource."))  # fmt: skip
        if token != self.token:
            return json_response(400, graph_error(190, "Invalid OAuth access token - Cannot "
                                                  "parse access token"))  # fmt: skip
        if self.token_expired:
            return json_response(400, EXPIRED)
        return None

    def _params(self, request) -> dict:
        if request.mimetype == "application/json":
            body = json.loads(request.get_data() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
            return body
        return dict(request.form)

    def _node(self, request, audience_id):
        if request.method != "GET":
            return json_response(400, graph_error(100, "Unsupported request."))
        fields = set(request.args.get("fields", "id").split(","))
        answer = {"id": audience_id}
        if "operation_status" in fields:
            answer["operation_status"] = (
                {"code": 471, "description": "This audience has been flagged for integrity "
                 "reasons and cannot be used until the restriction is resolved."}
                if audience_id in self.flagged else {"code": 200, "description": "Normal"}
            )  # fmt: skip
        return json_response(200, answer)

    def _fault(self, batch_seq):
        with self.lock:
            for fault in self.faults:
                if fault.batch_seq == batch_seq and fault.times > 0:
                    fault.times -= 1
                    return fault.answer
        return None

    def _note_refusal(self, batch_seq, why: str):
        with self.lock:
            self.refused.append((batch_seq, why))

    def _refuse(self, batch_seq, status: int, body: dict, problem: str = ""):
        self._note_refusal(batch_seq, body["error"]["message"])
        if problem:
            with self.lock:
                self.problems.append(problem)
        return json_response(status, body)

    def _invalid(self, batch_seq, problem: str):
        """A request Meta would refuse as a whole: error 100, and a client problem."""
        self.refused.append((batch_seq, problem))
        self.problems.append(problem)
        return json_response(400, graph_error(100, f"(#100) {problem}"))

    def _take(self, version, audience_id, edge, payload, session):  # under the lock
        seq = session.get("batch_seq") if isinstance(session, dict) else None
        if not isinstance(session, dict):
            return self._invalid(seq, "session is required (session_id, batch_seq, ...)")
        missing = {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"} - set(
            session
        )
        if missing:
            return self._invalid(seq, f"session lacks {sorted(missing)}")
        sid, flag, estimate = (session["session_id"], session["last_batch_flag"],
                               session["estimated_num_total"])  # fmt: skip
        if not (isinstance(sid, int) and 0 < sid < 2**63):
            return self._invalid(seq, f"session_id must be a positive int64, not {sid!r}")
        if not (isinstance(seq, int) and seq >= 1):
            return self._invalid(seq, f"batch_seq must be an integer from 1, not {seq!r}")
        if not isinstance(flag, bool) or not isinstance(estimate, int):
            return self._invalid(seq, "last_batch_flag must be a boolean and "
                                 "estimated_num_total an integer")  # fmt: skip
        if shape := self._shape_problem(payload):
            return self._invalid(seq, shape)
        schema = payload["schema"] if isinstance(payload["schema"], list) else [payload["schema"]]
        rows = [r if isinstance(r, list) else [r] for r in payload["data"]]

        current = self.sessions.get(audience_id)
        retry = False
        if current is not None and current.session_id == sid:
            if current.finished:
                if edge == "usersreplace":
                    return self._meta_refusal(seq, 1870159, "Replace Session Finished")
                self.problems.append(f"batch {seq} came after the session's last_batch_flag")
            if edge != current.edge:
                self.problems.append(f"session {sid} moved from /{current.edge} to /{edge}")
            if seq == current.last_seq:
                retry = True
            elif seq != current.last_seq + 1:
                self.problems.append(
                    f"batch_seq went from {current.last_seq} to {seq} in session {sid}"
                )
            if estimate != current.estimated_num_total:
                self.problems.append(f"estimated_num_total changed from "
                                     f"{current.estimated_num_total} to {estimate}")  # fmt: skip
        else:
            if current is not None and not current.finished:
                if "usersreplace" in (edge, current.edge):
                    return self._meta_refusal(seq, 1870145, "Audience Update In Progress")
                self.problems.append(
                    f"session {sid} began while session {current.session_id} was still open"
                )
            if seq != 1:
                if edge == "usersreplace":
                    return self._meta_refusal(seq, 1870147, "Invalid Upload Batch for Replace")
                self.problems.append(f"session {sid} began at batch_seq {seq}, not 1")
            current = Session(sid, edge, estimate)
            self.sessions[audience_id] = current
            if edge == "usersreplace":
                self.status[audience_id] = "replace_in_progress"

        invalid, samples = self._entries(schema, rows)
        self.batches.append(Batch(edge, audience_id, version, dict(session), schema, rows, retry))
        current.last_seq = seq
        if not retry:
            current.received += len(rows)
            if edge == "usersreplace":
                current.staged.extend(rows)
            else:
                self.members.setdefault(audience_id, []).extend(rows)
        if flag:
            current.finished = True
            if edge == "usersreplace":
                self.members[audience_id] = list(current.staged)
                self.status.pop(audience_id, None)
        return json_response(200, {
            "audience_id": audience_id, "session_id": str(sid),
            "num_received": current.received, "num_invalid_entries": invalid,
            "invalid_entry_samples": samples,
        })  # fmt: skip

    def _meta_refusal(self, batch_seq, subcode: int, title: str):  # under the lock
        """One of the 2650 errors of /usersreplace: Meta's answer, not a client problem."""
        self.refused.append((batch_seq, title))
        body = graph_error(
            2650, "Failed to update the custom audience", subcode=subcode, title=title
        )
        return json_response(400, body)

    def _shape_problem(self, payload) -> str:
        if not isinstance(payload, dict) or "schema" not in payload or "data" not in payload:
            return "payload must hold schema and data"
        schema, data = payload["schema"], payload["data"]
        if isinstance(schema, str):
            if schema not in SINGLE_KEYS:
                return f"unknown schema {schema!r}"
        elif isinstance(schema, list) and schema:
            if unknown := [k for k in schema if k not in MULTI_KEYS]:
                return f"unknown multi-key schema keys {unknown} (known: {sorted(MULTI_KEYS)})"
            if len(set(schema)) != len(schema):
                return "a key appears twice in the schema"
        else:
            return "schema must be a key or a list of keys"
        if not isinstance(data, list) or not data:
            return "data must be a non-empty list"
        if len(data) > 10_000:
            return f"a request takes at most 10000 users, not {len(data)}"
        width = len(schema) if isinstance(schema, list) else 1
        for i, row in enumerate(data):
            cells = row if isinstance(row, list) else [row]
            if len(cells) != width:
                return f"row {i} has {len(cells)} values for a schema of {width}"
            if not all(isinstance(c, str) for c in cells):
                return f"row {i} holds a value that is not a string"
        return ""

    def _entries(self, schema, rows) -> tuple[int, dict]:
        """Meta's num_invalid_entries and samples; each also a client problem."""
        invalid, samples = 0, {}
        hashed = [i for i, key in enumerate(schema) if key not in UNHASHED_KEYS]
        extern = [i for i, key in enumerate(schema) if key == "EXTERN_ID"]
        for row in rows:
            if not any(row):
                why = "a row with no key"
            elif bad := [row[i] for i in hashed if row[i] and not HEX64.fullmatch(row[i])]:
                why = f"not a lowercase SHA-256 hex: {bad[0][:70]!r}"
            elif any(HEX64.fullmatch(row[i]) for i in extern):
                why = "EXTERN_ID looks hashed: Herald sends it as it is"
            else:
                continue
            invalid += 1
            if len(samples) < 100:
                samples[json.dumps(row)[:200]] = why
            if len(self.problems) < 1000:
                self.problems.append(why)
        return invalid, samples


@contextlib.contextmanager
def threaded_server():
    """A pytest-httpserver on 127.0.0.1 answering each connection in its own thread (a
    request held past the client's timeout must not stall the client's retry). Stopping
    it takes half a second (werkzeug's poll interval): share one across a module and put
    a new FakeGraph on it for each test."""
    server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def fresh_graph(server: HTTPServer, **kwargs) -> FakeGraph:
    """A new FakeGraph in place of whatever the server answered before."""
    server.clear()
    return FakeGraph(server, **kwargs)


@contextlib.contextmanager
def fake_graph(**kwargs):
    """A FakeGraph on a server of its own."""
    with threaded_server() as server:
        yield FakeGraph(server, **kwargs)
