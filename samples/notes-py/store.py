"""The notes table on SQLite or PostgreSQL: connections per database, and every query of the app.

Every statement names the tenant: it filters on tenant_id (and inserts it) with the id of the
verified tenant context, as a parameter. Each database may be shared by many tenants (the pool).
SQLite has no row-level security, and Tenantry.Data's SQLite guard exists for .NET apps only, so
an app in another language keeps its tenants apart itself, here, in every query. On PostgreSQL
each statement also runs after set_config('app.tenant_id', …, true) (pg.py), which the pool's
row-level security checks, so a query that forgot its filter would still see one tenant only.
The same SQL text runs on both: '?' placeholders, standard types, no dialect functions.

The app never changes the schema: Tenantry applies the release's migrations before it starts
the instance. Queries name their columns, so a release runs on a schema a later release has
extended (2.0.0 adds notes.pinned; 1.0.0 ignores it and inserts rows that take its default).
"""

import os
import sqlite3
import threading
import urllib.parse
from collections import OrderedDict

import pg

BUSY_TIMEOUT_SECONDS = 5


UNSUPPORTED = ("is neither a SQLite Data Source (Data Source=<absolute file path>) nor a PostgreSQL connection string "
               "(Host=…;Port=…;Database=…;Username=…;Password=…)")
# Keys of a SQLite connection string that change nothing here; any other key makes it a server's (PostgreSQL) string.
_SQLITE_KEYS = ("mode", "cache", "pooling", "foreign keys", "recursive triggers", "default timeout", "command timeout")


class UnsupportedDatabase(ValueError):
    """A connection string this sample cannot use; the message completes "<name> …" and never holds the value."""


def database(connection_string):
    """Where TENANTRY_DATABASE (or the data service) points: a SQLite file's absolute path (str), or a pg.Target."""
    if not isinstance(connection_string, str):
        raise UnsupportedDatabase(UNSUPPORTED)
    pairs = _pairs(connection_string)
    keys = {key for key, _ in pairs}
    if keys & {"host", "server"}:
        try:
            return pg.target(pairs)
        except ValueError as e:
            raise UnsupportedDatabase(f"is a PostgreSQL connection string that {e}") from None
    source = None
    for key, value in pairs:
        if key in ("data source", "datasource", "filename"):
            source = value
        elif key not in _SQLITE_KEYS:
            raise UnsupportedDatabase(UNSUPPORTED)
    if not source or source == ":memory:":
        raise UnsupportedDatabase(UNSUPPORTED)
    if not os.path.isabs(source):
        raise UnsupportedDatabase("names its SQLite file by a relative path: give Data Source=<absolute file path>")
    return source


def _pairs(text):
    pairs = []
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in " ;":
            i += 1
        if i >= len(text):
            break
        eq = text.find("=", i)
        if eq < 0:
            raise UnsupportedDatabase(NOT_SQLITE)
        key = " ".join(text[i:eq].split()).lower()
        i = eq + 1
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] in "\"'":
            quote = text[i]
            value = []
            i += 1
            while True:
                if i >= len(text):
                    raise UnsupportedDatabase(NOT_SQLITE)
                if text[i] == quote:
                    if i + 1 < len(text) and text[i + 1] == quote:
                        value.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                value.append(text[i])
                i += 1
            value = "".join(value)
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] != ";":
                raise UnsupportedDatabase(NOT_SQLITE)
        else:
            end = text.find(";", i)
            end = len(text) if end < 0 else end
            value = text[i:end].strip()
            i = end
        if not key:
            raise UnsupportedDatabase(NOT_SQLITE)
        pairs.append((key, value))
    return pairs


class Databases:
    """Open connections by database (a SQLite file's path or a pg.Target), a few idle ones kept per database, for a bounded number of databases."""

    IDLE_PER_FILE = 8
    MAX_FILES = 64

    def __init__(self):
        self._idle = OrderedDict()
        self._wal = set()
        self._lock = threading.Lock()

    def connect(self, path, tenant_id):
        """A connection to path (a SQLite file, or a pg.Target) whose statements run for tenant_id."""
        with self._lock:
            idle = self._idle.get(path)
            if idle:
                self._idle.move_to_end(path)
                connection = idle.pop()
                return connection.for_tenant(tenant_id) if isinstance(connection, pg.Connection) else connection
        if isinstance(path, pg.Target):
            return pg.Connection(path, tenant_id)
        # mode=rw: the file is Tenantry's to create (with the migrations); a missing one is an error, not a new empty file.
        connection = sqlite3.connect(
            "file:" + urllib.parse.quote(path) + "?mode=rw", uri=True,
            timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
            if path not in self._wal:
                self._use_wal(connection, path)
        except BaseException:
            connection.close()
            raise
        return connection

    def _use_wal(self, connection, path):
        # WAL: readers do not wait for the writer. It is a property of the file, so once per file is enough.
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError:
            # Another process holds the file (a migration running); a later connection switches it.
            return
        if mode and str(mode[0]).lower() == "wal":
            with self._lock:
                self._wal.add(path)

    def release(self, path, connection, healthy=True):
        if healthy and not connection.in_transaction:
            with self._lock:
                idle = self._idle.setdefault(path, [])
                self._idle.move_to_end(path)
                if len(idle) < self.IDLE_PER_FILE:
                    idle.append(connection)
                    connection = None
                evicted = []
                while len(self._idle) > self.MAX_FILES:
                    _, old = self._idle.popitem(last=False)
                    evicted.extend(old)
            for old in evicted:
                old.close()
        if connection is not None:
            connection.close()


NOTE_COLUMNS = "id, tenant_id, title, body, created_by, created_at, updated_at"


class Notes:
    """The notes of one tenant in one database. with_pin: the release knows the pinned column (2.0.0)."""

    def __init__(self, connection, tenant_id, with_pin):
        self._db = connection
        self._tenant = tenant_id
        self._columns = NOTE_COLUMNS + (", pinned" if with_pin else "")
        self._with_pin = with_pin

    def _note(self, row):
        if row is None:
            return None
        note = {
            "id": row[0], "tenantId": row[1], "title": row[2], "body": row[3],
            "createdBy": row[4], "createdAt": row[5], "updatedAt": row[6],
        }
        if self._with_pin:
            note["pinned"] = bool(row[7])
        return note

    def list(self, limit, after):
        sql = f"SELECT {self._columns} FROM notes WHERE tenant_id = ?"
        args = [self._tenant]
        if after is not None:
            sql += " AND id > ?"
            args.append(after)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit + 1)
        rows = self._db.execute(sql, args).fetchall()
        items = [self._note(r) for r in rows[:limit]]
        return items, (items[-1]["id"] if len(rows) > limit else None)

    def get(self, note_id):
        row = self._db.execute(
            f"SELECT {self._columns} FROM notes WHERE tenant_id = ? AND id = ?", (self._tenant, note_id)).fetchone()
        return self._note(row)

    def create(self, note_id, title, body, created_by, at):
        self._write(
            "INSERT INTO notes (id, tenant_id, title, body, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (note_id, self._tenant, title, body, created_by, at, at))
        return self.get(note_id)

    def update(self, note_id, title, body, at):
        changed = self._write(
            "UPDATE notes SET title = ?, body = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            (title, body, at, self._tenant, note_id))
        return self.get(note_id) if changed else None

    def delete(self, note_id):
        return self._write("DELETE FROM notes WHERE tenant_id = ? AND id = ?", (self._tenant, note_id)) > 0

    def pin(self, note_id, pinned, at):
        changed = self._write(
            "UPDATE notes SET pinned = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            (1 if pinned else 0, at, self._tenant, note_id))
        return self.get(note_id) if changed else None

    def _write(self, sql, args):
        # One statement in autocommit is its own transaction: it is durable when the call returns.
        return self._db.execute(sql, args).rowcount
