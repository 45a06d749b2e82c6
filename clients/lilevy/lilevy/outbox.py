"""A lilEVY node's outbox: requests made while the uplink was down, kept on disk until
bigEVY acknowledges them.

Exactly once from bigEVY's point of view: each entry gets its Idempotency-Key (a uuid4) when
it is queued and is sent with that key on every try, so a try that landed but whose reply was
lost (or a crash between the reply and the row's deletion) is stored once by bigEVY. Order is
kept: delivery goes oldest first and stops at the first transient failure. An entry bigEVY
refuses for good (a 4xx other than 401/429) moves to `dead_letters` with the error, so it
cannot block the rest; a 401 stops delivery instead, since it is about the key, not the entry.

A SQLite file (WAL, synchronous=FULL: a Pi loses power), so it survives restarts and power
cuts; only the standard library.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lilevy.errors import AuthError, EdgeError

if TYPE_CHECKING:
    from lilevy.client import EdgeClient

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    status INTEGER,
    error TEXT NOT NULL
);
"""


@dataclass
class Entry:
    """A queued request; `id` is its Idempotency-Key, `seq` its place in line."""

    seq: int
    id: str
    kind: str
    method: str
    path: str
    body: Any
    created_at: float
    attempts: int = 0
    last_error: str | None = None


@dataclass
class Delivered:
    entry: Entry
    status: int
    reply: Any
    #: bigEVY had already done it (an earlier try landed); the reply is the first one.
    replayed: bool


@dataclass
class DeadLetter:
    entry: Entry
    status: int | None
    error: dict[str, Any]
    failed_at: float


@dataclass
class DeliveryReport:
    delivered: list[Delivered] = field(default_factory=list)
    dead_lettered: list[DeadLetter] = field(default_factory=list)
    #: Why delivery stopped early (a transient failure or a bad key); None if it did not.
    stopped_by: EdgeError | None = None
    #: Entries still waiting.
    remaining: int = 0


def _error_fields(error: EdgeError) -> dict[str, Any]:
    return {
        "message": error.message,
        "type": error.type,
        "param": error.param,
        "code": error.code,
        "status": error.status,
    }


class Outbox:
    """`put` while offline, `deliver(client)` when the uplink is back.

    Safe to share between threads of one process (one connection behind a lock) and to open
    from several processes (SQLite locking; bigEVY drops duplicates by key)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queueing -------------------------------------------------------------------------

    def put(
        self,
        kind: str,
        path: str,
        body: Any,
        *,
        method: str = "POST",
        idempotency_key: str | None = None,
    ) -> str:
        """Queue a request; returns its Idempotency-Key (a new uuid4 unless given: giving one
        is for a call whose tries already used it, so bigEVY can tell a repeat)."""
        key = idempotency_key or str(uuid.uuid4())
        with self._lock:
            self._db.execute(
                "INSERT INTO outbox (id, kind, method, path, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (key, kind, method, path, json.dumps(body), time.time()),
            )
        return key

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def entries(self) -> list[Entry]:
        """Everything waiting, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY seq").fetchall()
        return [_entry(r) for r in rows]

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, kind, method, path, body, created_at, 0, NULL, "
                "status, error, failed_at FROM dead_letters ORDER BY seq"
            ).fetchall()
        return [DeadLetter(_entry(r[:9]), r[9], json.loads(r[10]), r[11]) for r in rows]

    # -- delivery -------------------------------------------------------------------------

    async def deliver(self, client: EdgeClient, *, retry: bool = True) -> DeliveryReport:
        """Send what waits, oldest first, each with its own key; a row goes only once bigEVY
        acknowledged it (2xx, an idempotent replay included).

        `retry`: each entry gets the client's retries (honouring Retry-After, so a backlog
        drains at the rate bigEVY allows) before delivery stops. Entries queued while this
        runs wait for the next delivery."""
        report = DeliveryReport()
        with self._lock:
            last = self._db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]
        after = 0
        while True:
            entry = self._next(after, last)
            if entry is None:
                break
            after = entry.seq
            try:
                reply = await client.request(
                    entry.method,
                    entry.path,
                    json=entry.body,
                    idempotency_key=entry.id,
                    kind=entry.kind,
                    retry=retry,
                )
            except EdgeError as error:
                permanent = (
                    error.status is not None
                    and 400 <= error.status < 500
                    and not error.transient
                    and not isinstance(error, AuthError)
                )
                if permanent:
                    report.dead_lettered.append(self._bury(entry, error))
                    continue
                self._note_failure(entry, error)
                report.stopped_by = error
                break
            self._remove(entry)
            report.delivered.append(Delivered(entry, reply.status, reply.body, reply.replayed))
        report.remaining = self.depth()
        return report

    def _next(self, after: int, upto: int) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1",
                (after, upto),
            ).fetchone()
        return _entry(row) if row else None

    def _remove(self, entry: Entry) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (entry.seq,))

    def _note_failure(self, entry: Entry, error: EdgeError) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (str(error), entry.seq),
            )

    def _bury(self, entry: Entry, error: EdgeError) -> DeadLetter:
        """Move a refused entry to dead_letters, in one transaction."""
        letter = DeadLetter(entry, error.status, _error_fields(error), time.time())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO dead_letters (seq, id, kind, method, path, body, "
                    "created_at, failed_at, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.seq,
                        entry.id,
                        entry.kind,
                        entry.method,
                        entry.path,
                        json.dumps(entry.body),
                        entry.created_at,
                        letter.failed_at,
                        letter.status,
                        json.dumps(letter.error),
                    ),
                )
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (entry.seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return letter


_COLUMNS = "seq, id, kind, method, path, body, created_at, attempts, last_error"


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, key, kind, method, path, body, created_at, attempts, last_error = row
    return Entry(seq, key, kind, method, path, json.loads(body), created_at, attempts, last_error)
