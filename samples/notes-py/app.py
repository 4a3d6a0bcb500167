"""Notes: a small app that runs under Tenantry, in Python with the standard library only.

Tenantry starts it as a process and it learns everything from its environment (README.md has
the contract): PORT, TENANTRY_APP, TENANTRY_RELEASE, TENANTRY_TENANT_ID, TENANTRY_DATABASE,
TENANTRY_DATA_URL, TENANTRY_CONTEXT_JWKS, and the release's own NOTES_FEATURES and
NOTES_FAIL_PERCENT. It reads no other variable and no file of the host.

    python3 app.py                      serve (the environment above)
    python3 app.py --check-vectors F    give each test vector of F (docs/tenant-context.md) its verdict
"""

import sys

# The sample's folder may be read-only to the instance, and is Tenantry's, not the app's: write no .pyc there.
sys.dont_write_bytecode = True

import datetime  # noqa: E402
import functools  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import urllib.parse  # noqa: E402
import uuid  # noqa: E402

import pg  # noqa: E402

import store  # noqa: E402
import tenant_context  # noqa: E402
import tenant_data  # noqa: E402

MAX_BODY_BYTES = 64 * 1024
# A refused body up to this size is read to its end before the answer: a proxy in front (the gateway) reads the
# answer only once it has sent the whole body, and reports a connection closed under it as 502.
DRAIN_BYTES = 8 * 1024 * 1024
MAX_TITLE = 200
MAX_TEXT = 20_000
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DRAIN_SECONDS = 10
PROBLEM_BASE = "https://tenantry.dev/problems/"

_NOTE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class StartupError(Exception):
    """A setting the instance cannot start with; main prints it as one line and exits 2."""


class Problem(Exception):
    """An RFC 9457 problem answer."""

    def __init__(self, status, kind, title, detail=None, errors=None, headers=None):
        super().__init__(title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def document(self):
        body = {"type": PROBLEM_BASE + self.kind, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        return body


def _validation(errors):
    return Problem(400, "validation", "One or more validation errors occurred.", errors=errors)


def _not_found(what):
    return Problem(404, "not-found", "Not found.", f"{what} does not exist.")


class Settings:
    """What the environment says, checked once at start."""

    def __init__(self, env):
        port = env.get("PORT", "")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise StartupError("PORT must be a TCP port (1-65535) to listen on at 127.0.0.1.")
        self.port = int(port)

        self.app = env.get("TENANTRY_APP", "")
        if not self.app:
            raise StartupError("TENANTRY_APP must name this app (the tenant context's audience).")
        self.release = env.get("TENANTRY_RELEASE") or "unknown"

        tenant = env.get("TENANTRY_TENANT_ID") or None
        if tenant is not None:
            try:
                tenant = str(uuid.UUID(tenant))
            except ValueError:
                raise StartupError("TENANTRY_TENANT_ID must be a tenant id (a UUID).") from None
        self.tenant_id = tenant

        jwks = env.get("TENANTRY_CONTEXT_JWKS", "")
        if not jwks:
            raise StartupError("TENANTRY_CONTEXT_JWKS must hold the gateway's public keys (a JWKS).")
        try:
            self.keys = tenant_context.parse_jwks(jwks)
        except ValueError as e:
            raise StartupError(f"TENANTRY_CONTEXT_JWKS {e}.") from None

        database = env.get("TENANTRY_DATABASE", "")
        try:
            self.database = store.database(database)
        except store.UnsupportedDatabase as e:
            # Never the value itself: a server connection string holds a password.
            raise StartupError(f"TENANTRY_DATABASE {e}.") from None

        self.data_url = env.get("TENANTRY_DATA_URL") or None
        if self.data_url is not None and urllib.parse.urlsplit(self.data_url).scheme not in ("http", "https"):
            raise StartupError("TENANTRY_DATA_URL must be an http(s) URL.")

        features = {f.strip() for f in env.get("NOTES_FEATURES", "").split(",") if f.strip()}
        self.pin = "pin" in features

        fail = env.get("NOTES_FAIL_PERCENT", "0") or "0"
        if not fail.isdigit() or int(fail) > 100:
            raise StartupError("NOTES_FAIL_PERCENT must be a whole number from 0 to 100.")
        self.fail_percent = int(fail)


def _now_text():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id():
    """A UUIDv7: time-ordered, so ids sort by creation and page in that order."""
    value = (time.time_ns() // 1_000_000 & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76
    value = value & ~(0x3 << 62) | 0x2 << 62
    return str(uuid.UUID(int=value))


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


class Request:
    """One request as the routes see it; the body is read only when a route asks for it."""

    def __init__(self, method, target, headers, read_body):
        self.method = method
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.headers = headers
        self._read_body = read_body

    def params(self, *names):
        try:
            parsed = urllib.parse.parse_qs(self.query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
        except ValueError:
            raise Problem(400, "bad-query", "The query string is not valid.", "At most 20 query parameters.") from None
        result = {}
        for name in names:
            values = parsed.get(name, [])
            if len(values) > 1:
                raise _validation({name: [f"Give {name} once."]})
            result[name] = values[0] if values else None
        return result

    def json_object(self):
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise Problem(415, "unsupported-media-type", "The body is not JSON.", "Send Content-Type: application/json.")
        raw = self._read_body()
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise Problem(400, "invalid-json", "The body is not valid JSON.", "Send a JSON object.") from None
        if not isinstance(value, dict):
            raise Problem(400, "invalid-json", "The body is not a JSON object.", "Send a JSON object.")
        return value


class NotesApp:
    def __init__(self, settings):
        self.settings = settings
        self.verifier = tenant_context.Verifier(settings.keys, settings.app, settings.tenant_id)
        self.locator = tenant_data.Locator(settings.database, settings.data_url, settings.tenant_id is not None)
        self.databases = store.Databases()
        self.stopping = False
        self._inflight = 0
        self._idle = threading.Condition()

    # Draining: a stop waits for the requests already being served.
    def begin(self):
        with self._idle:
            self._inflight += 1

    def end(self):
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def wait_idle(self, seconds):
        deadline = time.monotonic() + seconds
        with self._idle:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())

    def handle(self, request):
        """(status, JSON document or None, extra headers) for request; raises Problem."""
        if request.path == "/healthz":
            if request.method != "GET":
                raise Problem(405, "method-not-allowed", "Method not allowed.", headers={"Allow": "GET"})
            return 200, {"status": "healthy", "app": self.settings.app, "release": self.settings.release}, {}

        tokens = request.headers.get_all(tenant_context.HEADER) or []
        token = tokens[0] if len(tokens) == 1 else None
        verdict = self.verifier.verify(token, time.time())
        if not verdict.valid:
            if verdict.status == 403:
                raise Problem(403, "tenant-mismatch", "Wrong tenant.", verdict.reason)
            raise Problem(401, "tenant-context-missing", "No tenant context.", verdict.reason)
        context = verdict.context

        if self.settings.fail_percent and random.random() * 100 < self.settings.fail_percent:
            raise Problem(500, "injected-failure", "Failure injected by NOTES_FAIL_PERCENT.")

        segments = request.path.rstrip("/").split("/")[1:] if request.path != "/" else []
        if not segments or segments[0] != "notes" or len(segments) > 3:
            raise _not_found(request.path[:200])
        note_id = segments[1] if len(segments) > 1 else None
        if note_id is not None and not _NOTE_ID.fullmatch(note_id):
            raise _not_found(f"Note {note_id[:64]}")
        if len(segments) == 3 and (segments[2] != "pin" or not self.settings.pin):
            raise _not_found(request.path[:200])

        if note_id is None:
            allowed = ("GET", "POST")
        elif len(segments) == 2:
            allowed = ("GET", "PUT", "DELETE")
        else:
            allowed = ("POST", "DELETE")
        if request.method not in allowed:
            raise Problem(405, "method-not-allowed", "Method not allowed.", headers={"Allow": ", ".join(allowed)})

        # Everything of the caller's is checked before the database is touched; then the work runs on the tenant's notes.
        if note_id is None and request.method == "GET":
            work = functools.partial(_list_notes, *self._page(**request.params("limit", "after")))
        elif note_id is None:
            work = functools.partial(_create_note, *self._note_fields(request.json_object()), context.subject)
        elif len(segments) == 2 and request.method == "GET":
            work = functools.partial(_get_note, note_id)
        elif len(segments) == 2 and request.method == "PUT":
            work = functools.partial(_update_note, note_id, *self._note_fields(request.json_object()))
        elif len(segments) == 2:
            work = functools.partial(_delete_note, note_id)
        else:
            work = functools.partial(_pin_note, note_id, request.method == "POST")

        try:
            path = self.locator.database(context, token)
        except tenant_data.Unavailable as e:
            headers = {"Retry-After": str(e.retry_after)} if e.retry_after else {}
            raise Problem(e.status, e.kind, e.title, e.detail, headers=headers) from None
        status, document = self._with_notes(path, context, work)
        headers = {"Location": f"/notes/{document['id']}"} if status == 201 else {}
        return status, document, headers

    def _with_notes(self, path, context, work):
        try:
            connection = self.databases.connect(path, context.tenant_id)
        except (sqlite3.Error, pg.OperationalError) as e:
            _log(f"database of tenant {context.tenant_id} cannot be opened: {e}")
            raise Problem(503, "database-unavailable", "The tenant's database is unavailable.",
                          "Try again shortly.", headers={"Retry-After": "1"}) from None
        healthy = True
        try:
            return work(store.Notes(connection, context.tenant_id, self.settings.pin))
        except (sqlite3.OperationalError, pg.OperationalError) as e:
            healthy = False
            _log(f"database of tenant {context.tenant_id}: {e}")
            raise Problem(503, "database-unavailable", "The tenant's database is unavailable.",
                          "Try again shortly.", headers={"Retry-After": "1"}) from None
        finally:
            self.databases.release(path, connection, healthy)

    @staticmethod
    def _page(limit, after):
        errors = {}
        if limit is None:
            limit = DEFAULT_LIMIT
        elif limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT:
            limit = int(limit)
        else:
            errors["limit"] = [f"limit is a whole number from 1 to {MAX_LIMIT}."]
        if after is not None and not _NOTE_ID.fullmatch(after):
            errors["after"] = ["after is the id of a note (the next of a previous page)."]
        if errors:
            raise _validation(errors)
        return limit, after

    @staticmethod
    def _note_fields(value):
        errors = {}
        title = value.get("title")
        body = value.get("body", "")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE or _has_control(title):
            errors["title"] = [f"A title of 1-{MAX_TITLE} characters, without control characters, is required."]
        if body is None:
            body = ""
        if not isinstance(body, str) or len(body) > MAX_TEXT or "\x00" in body:
            errors["body"] = [f"body is text of at most {MAX_TEXT} characters."]
        if errors:
            raise _validation(errors)
        return title, body


def _list_notes(limit, after, notes):
    items, next_id = notes.list(limit, after)
    return 200, {"items": items, "next": next_id}


def _create_note(title, body, created_by, notes):
    return 201, notes.create(_new_id(), title, body, created_by, _now_text())


def _get_note(note_id, notes):
    return _found(notes.get(note_id), note_id)


def _update_note(note_id, title, body, notes):
    return _found(notes.update(note_id, title, body, _now_text()), note_id)


def _delete_note(note_id, notes):
    if not notes.delete(note_id):
        raise _not_found(f"Note {note_id}")
    return 204, None


def _pin_note(note_id, pinned, notes):
    return _found(notes.pin(note_id, pinned, _now_text()), note_id)


def _found(note, note_id):
    if note is None:
        raise _not_found(f"Note {note_id}")
    return 200, note


def _has_control(text):
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def _log(line):
    print(f"notes: {line}", file=sys.stderr, flush=True)


class NotesHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "notes"
    # An idle keep-alive connection is closed after this long.
    timeout = 120

    def version_string(self):
        return self.server_version

    def __getattr__(self, name):
        # Every method reaches the routes, which answer 405 with Allow (instead of the server's 501).
        if name.startswith("do_"):
            return lambda: self._serve(name[3:])
        raise AttributeError(name)

    def _serve(self, method):
        app = self.server.app
        self._body_read = False
        app.begin()
        try:
            try:
                status, document, headers = app.handle(Request(method, self.path, self.headers, self._read_body))
            except Problem as p:
                status, document, headers = p.status, p.document(), p.headers
            except Exception:  # noqa: BLE001 — the answer to a bug is a 500 without details; the details go to the log
                _log("unexpected error: " + traceback.format_exc().strip().replace("\n", " | "))
                p = Problem(500, "internal", "The request could not be served.")
                status, document, headers = p.status, p.document(), p.headers
            if not self._body_read:
                self._discard_body()
            self._respond(status, document, headers)
        finally:
            app.end()

    def _read_body(self):
        """The body (at most MAX_BODY_BYTES, else 413), by Content-Length or chunked."""
        self._body_read = True
        try:
            return self._receive_body()
        except OSError:
            # The caller stopped sending (or went quiet past the timeout): nothing more comes on this connection.
            self.close_connection = True
            raise Problem(400, "bad-request", "The body was not received.") from None

    def _receive_body(self):
        encoding = (self.headers.get("Transfer-Encoding") or "").lower()
        if encoding:
            if encoding != "chunked":
                self.close_connection = True
                raise Problem(501, "not-implemented", "Transfer-Encoding not supported.", "Send the body with Content-Length or chunked.")
            data, complete = self._read_chunked(MAX_BODY_BYTES)
            if not complete:
                raise self._too_large()
            return data
        length = self._content_length()
        if length > MAX_BODY_BYTES:
            self._drain(length)
            raise self._too_large()
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            self.close_connection = True
            raise Problem(400, "bad-request", "The body ended before Content-Length.")
        return data

    def _content_length(self):
        length = self.headers.get("Content-Length")
        if length is None:
            return 0
        if not length.isdigit():
            self.close_connection = True
            raise Problem(400, "bad-request", "Content-Length is not a number.")
        return int(length)

    def _read_chunked(self, keep):
        """(the body, True) or (its first bytes, False) when it is longer than keep; read to its end up to DRAIN_BYTES."""
        data = bytearray()
        total = 0
        try:
            for _ in range(DRAIN_BYTES):
                line = self.rfile.readline(1026)
                if not line.endswith(b"\n"):
                    raise ValueError("chunk size")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    for _ in range(64):
                        if self.rfile.readline(8194) in (b"\r\n", b"\n", b""):
                            return bytes(data), total <= keep
                    raise ValueError("trailers")
                total += size
                if total > DRAIN_BYTES:
                    raise ValueError("too long to read away")
                for offset in range(0, size, 65536):
                    chunk = self.rfile.read(min(65536, size - offset))
                    if not chunk:
                        raise ValueError("chunk")
                    if total <= keep:
                        data += chunk
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise ValueError("chunk end")
            raise ValueError("chunks")
        except ValueError:
            self.close_connection = True
            if total > keep:
                return b"", False
            raise Problem(400, "bad-request", "The chunked body is malformed.") from None

    def _drain(self, length):
        """Reads a body no route uses, so the answer is not lost to a reset connection; past DRAIN_BYTES, closes instead."""
        if length > DRAIN_BYTES:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(65536, remaining))
            if not chunk:
                self.close_connection = True
                return
            remaining -= len(chunk)

    @staticmethod
    def _too_large():
        return Problem(413, "payload-too-large", "The body is too large.", f"A body is at most {MAX_BODY_BYTES} bytes.")

    def _discard_body(self):
        """A body no route read (a refused request): read away, or the connection closed after the answer."""
        try:
            if self.headers.get("Transfer-Encoding"):
                if self.headers.get("Transfer-Encoding").lower() == "chunked":
                    self._read_chunked(0)
                else:
                    self.close_connection = True
            else:
                self._drain(self._content_length())
        except (Problem, OSError):
            self.close_connection = True

    def _respond(self, status, document, headers):
        payload = b"" if document is None else json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        if document is not None:
            self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-App-Release", self.server.app.settings.release)
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.server.app.stopping:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_error(self, code, message=None, explain=None):
        # The server's own refusals (a bad request line, headers too large) as problem details too.
        self.close_connection = True
        try:
            short = message or self.responses.get(code, ("Error",))[0]
            self._respond(code, {"type": PROBLEM_BASE + "bad-request", "title": short, "status": code}, {})
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 — the base class's name
        # No access log per request (the gateway keeps one); errors come through _log.
        pass


class NotesServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, app):
        self.app = app
        super().__init__(("127.0.0.1", app.settings.port), NotesHandler)

    def handle_error(self, request, client_address):
        # A caller that went away mid-answer is not worth a traceback; anything else gets one line.
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            _log(f"connection from {client_address[0]}: {error!r}")


def serve(env):
    try:
        settings = Settings(env)
    except StartupError as e:
        print(f"notes: {e}", file=sys.stderr, flush=True)
        return 2
    app = NotesApp(settings)
    try:
        server = NotesServer(app)
    except OSError as e:
        print(f"notes: cannot listen on 127.0.0.1:{settings.port}: {e.strerror or e}", file=sys.stderr, flush=True)
        return 1

    def stop(_signum, _frame):
        if not app.stopping:
            app.stopping = True
            # shutdown() waits for serve_forever, which runs on this (the main) thread: call it from another.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = f"dedicated to tenant {settings.tenant_id}" if settings.tenant_id else "shared"
    features = " with pin" if settings.pin else ""
    print(f"notes {settings.release}{features} ({where}) listening on 127.0.0.1:{settings.port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    app.wait_idle(DRAIN_SECONDS)
    server.server_close()
    return 0


def check_vectors(args):
    """--check-vectors FILE [--at UNIX] [--app NAME] [--tenant ID]: one JSON line per vector; exit 1 on any other verdict."""
    options = {"--at": None, "--app": None, "--tenant": None}
    path = args[1] if len(args) > 1 else None
    rest = args[2:]
    if path is None or len(rest) % 2 or any(rest[i] not in options for i in range(0, len(rest), 2)):
        print("usage: app.py --check-vectors FILE [--at UNIX_TIME] [--app NAME] [--tenant ID]", file=sys.stderr)
        return 2
    for i in range(0, len(rest), 2):
        options[rest[i]] = rest[i + 1]
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        keys = tenant_context.parse_jwks(json.dumps(document["jwks"]))
        if options["--at"] is not None:
            at = float(options["--at"])
        else:
            at = datetime.datetime.fromisoformat(document["at"].replace("Z", "+00:00")).timestamp()
        app = options["--app"] or document["audience"]
        if options["--tenant"] is not None:
            uuid.UUID(options["--tenant"])
        vectors = [(v["name"], v["token"], v.get("instance_tenant"), v.get("verdict")) for v in document["vectors"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"notes: cannot check {path} (a file of {{at, audience, jwks, vectors}}; --at a unix time; --tenant a UUID): {e}", file=sys.stderr)
        return 2
    all_match = True
    for name, token, instance_tenant, expected in vectors:
        verdict = tenant_context.Verifier(keys, app, options["--tenant"] or instance_tenant).verify(token, at)
        all_match = all_match and (expected is None or expected == verdict.name)
        print(json.dumps({"name": name, "verdict": verdict.name, "expected": expected}), flush=True)
    return 0 if all_match else 1


def main(argv):
    if argv and argv[0] == "--check-vectors":
        return check_vectors(argv)
    if argv:
        print("usage: app.py (serve; settings from the environment) | app.py --check-vectors FILE [...]", file=sys.stderr)
        return 2
    return serve(os.environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
