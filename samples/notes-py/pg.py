"""A small PostgreSQL client on the standard library: the frontend/backend protocol version 3.

This sample must run on the standard library, which has no PostgreSQL driver, so it speaks the
protocol itself: TCP, SCRAM-SHA-256 (or a cleartext/MD5 password if the server asks for one),
and the extended query protocol with every parameter and result as text. A real app uses a
driver (psycopg, asyncpg); the queries in store.py would stay the same.

Every statement runs in the implicit transaction the extended protocol forms up to a Sync, after
set_config('app.tenant_id', <tenant>, true): in the pool database, row-level security keys on
that setting, and the setting lives only as long as the transaction.
"""

import base64
import hashlib
import hmac
import secrets
import socket
import struct
from typing import NamedTuple

CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 30
# Server errors that mean "unavailable now" rather than a wrong statement: connection exceptions,
# insufficient resources, operator intervention (shutdown), transaction rollback (serialization, deadlock).
_UNAVAILABLE_CLASSES = ("08", "53", "57", "40")
_INTEGER_TYPES = {20, 21, 23}  # int8, int2, int4
_BOOL_TYPE = 16


class Error(Exception):
    """A PostgreSQL error: sqlstate (None for a network failure) and the server's message."""

    def __init__(self, message, sqlstate=None):
        super().__init__(message)
        self.sqlstate = sqlstate


class OperationalError(Error):
    """The database cannot be reached or cannot serve now; the connection is not reused."""


class Target(NamedTuple):
    host: str
    port: int
    database: str
    user: str
    password: str
    search_path: str | None


def target(pairs):
    """The Target of an Npgsql connection string's (key, value) pairs (lower-case keys); ValueError names what is wrong."""
    values = dict(pairs)
    host = values.get("host") or values.get("server")
    user = values.get("username") or values.get("user id") or values.get("user") or values.get("userid")
    database = values.get("database") or values.get("db")
    if not host or not user or not database:
        raise ValueError("names no Host, Username or Database")
    if "," in host or host.startswith("/"):
        raise ValueError("names several hosts or a Unix socket: give one Host over TCP")
    port = values.get("port") or "5432"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("names a Port that is not a port number")
    ssl = (values.get("ssl mode") or values.get("sslmode") or "prefer").lower()
    if ssl not in ("disable", "allow", "prefer"):
        raise ValueError("asks for TLS, which this sample does not speak: use it on a loopback or private network")
    return Target(host, int(port), database, user, values.get("password") or "", values.get("search path") or None)


class Result:
    """What one statement returned, shaped like a sqlite3 cursor: fetchone, fetchall, rowcount."""

    def __init__(self, rows, rowcount):
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self):
        return list(self._rows)


class Connection:
    """One authenticated connection. Not thread-safe: store.Databases lends it to one request at a time."""

    in_transaction = False  # every statement commits at its Sync

    def __init__(self, where, tenant_id=None):
        self._tenant = tenant_id
        self._buffer = b""
        try:
            self._socket = socket.create_connection((where.host, where.port), timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError as e:
            raise OperationalError(f"cannot connect to {where.host}:{where.port}: {e.strerror or e}") from None
        try:
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket.settimeout(STATEMENT_TIMEOUT_SECONDS)
            self._start(where)
        except BaseException:
            self.close()
            raise

    def for_tenant(self, tenant_id):
        """This connection, its next statements run for tenant_id (the app.tenant_id setting)."""
        self._tenant = tenant_id
        return self

    def close(self):
        try:
            self._socket.sendall(b"X\x00\x00\x00\x04")
        except OSError:
            pass
        self._socket.close()

    def execute(self, sql, args=()):
        """Runs sql ('?' placeholders, as sqlite3) with args as text, in one transaction with the tenant setting."""
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
        message = b""
        if self._tenant is not None:
            message += self._statement("SELECT set_config('app.tenant_id', $1, true)", [self._tenant])
        message += self._statement(numbered, args) + _message(b"S", b"")
        self._send(message)
        results = []
        rows, types, error = [], [], None
        while True:
            kind, body = self._receive()
            if kind == b"T":
                types = _row_types(body)
                rows = []
            elif kind == b"D":
                rows.append(_row(body, types))
            elif kind == b"C":
                tag = body.rstrip(b"\x00").decode()
                count = tag.rsplit(" ", 1)[-1]
                results.append((rows, int(count) if count.isdigit() else -1))
                rows, types = [], []
            elif kind == b"E":
                error = _error(body)
            elif kind == b"Z":
                break
        if error is not None:
            raise error
        rows, count = results[-1]
        return Result(rows, count)

    @staticmethod
    def _statement(sql, args):
        encoded = [None if a is None else str(a).encode() for a in args]
        bind = b"\x00\x00" + b"\x00\x00" + struct.pack("!h", len(encoded))
        for value in encoded:
            bind += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
        bind += b"\x00\x00"
        return (_message(b"P", b"\x00" + sql.encode() + b"\x00\x00\x00")
                + _message(b"B", bind)
                + _message(b"D", b"P\x00")
                + _message(b"E", b"\x00\x00\x00\x00\x00"))

    def _start(self, where):
        parameters = {"user": where.user, "database": where.database, "client_encoding": "UTF8",
                      "application_name": "notes-py"}
        if where.search_path:
            parameters["search_path"] = where.search_path
        body = struct.pack("!i", 196608) + b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in parameters.items()) + b"\x00"
        self._send(struct.pack("!i", len(body) + 4) + body)
        scram = None
        while True:
            kind, body = self._receive()
            if kind == b"E":
                raise _error(body, always_operational=True)
            if kind == b"Z":
                return
            if kind != b"R":
                continue
            (code,) = struct.unpack("!i", body[:4])
            if code == 0:
                continue
            if code == 3:
                self._send(_message(b"p", where.password.encode() + b"\x00"))
            elif code == 5:
                inner = hashlib.md5(where.password.encode() + where.user.encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                self._send(_message(b"p", b"md5" + outer.encode() + b"\x00"))
            elif code == 10:
                if b"SCRAM-SHA-256\x00" not in body[4:]:
                    raise OperationalError("the server offers no SCRAM-SHA-256 authentication")
                scram = _Scram(where.password)
                first = scram.client_first()
                self._send(_message(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first))
            elif code == 11 and scram is not None:
                self._send(_message(b"p", scram.client_final(body[4:])))
            elif code == 12 and scram is not None:
                scram.verify_server(body[4:])
            else:
                raise OperationalError(f"the server asks for an authentication this sample does not speak ({code})")

    def _send(self, data):
        try:
            self._socket.sendall(data)
        except OSError as e:
            raise OperationalError(f"the connection failed: {e}") from None

    def _receive(self):
        header = self._read(5)
        kind = header[:1]
        (length,) = struct.unpack("!i", header[1:])
        return kind, self._read(length - 4)

    def _read(self, count):
        while len(self._buffer) < count:
            try:
                chunk = self._socket.recv(max(65536, count - len(self._buffer)))
            except OSError as e:
                raise OperationalError(f"the connection failed: {e}") from None
            if not chunk:
                raise OperationalError("the server closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


class _Scram:
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding, as PostgreSQL runs it."""

    def __init__(self, password):
        self._password = password.encode()
        self._nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = "n=,r=" + self._nonce
        self._server_signature = None

    def client_first(self):
        return ("n,," + self._first_bare).encode()

    def client_final(self, server_first):
        text = server_first.decode()
        fields = dict(item.split("=", 1) for item in text.split(","))
        if not fields.get("r", "").startswith(self._nonce):
            raise OperationalError("the server's SCRAM nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = "c=biws,r=" + fields["r"]
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = hmac.digest(hmac.digest(salted, b"Server Key", "sha256"), auth_message, "sha256")
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify_server(self, server_final):
        text = server_final.decode()
        if not text.startswith("v=") or not hmac.compare_digest(base64.b64decode(text[2:]), self._server_signature or b""):
            raise OperationalError("the server did not prove it knows the password")


def _message(kind, body):
    return kind + struct.pack("!i", len(body) + 4) + body


def _row_types(body):
    (count,) = struct.unpack("!h", body[:2])
    types, at = [], 2
    for _ in range(count):
        at = body.index(b"\x00", at) + 1
        types.append(struct.unpack("!i", body[at + 6:at + 10])[0])
        at += 18
    return types


def _row(body, types):
    (count,) = struct.unpack("!h", body[:2])
    values, at = [], 2
    for i in range(count):
        (length,) = struct.unpack("!i", body[at:at + 4])
        at += 4
        if length < 0:
            values.append(None)
            continue
        text = body[at:at + length].decode()
        at += length
        kind = types[i] if i < len(types) else 0
        values.append(int(text) if kind in _INTEGER_TYPES else (text == "t") if kind == _BOOL_TYPE else text)
    return tuple(values)


def _error(body, always_operational=False):
    fields = {}
    for part in body.split(b"\x00"):
        if part:
            fields[part[:1]] = part[1:].decode(errors="replace")
    sqlstate = fields.get(b"C")
    message = fields.get(b"M", "unknown error")
    if always_operational or (sqlstate or "")[:2] in _UNAVAILABLE_CLASSES:
        return OperationalError(message, sqlstate)
    return Error(message, sqlstate)
