"""One SQLite file holds everything the demo learns and spends: battles, embedding cache, routing log.

Why SQLite through sqlite-utils: one file, no server, safe for the app, the API server and the CLI
to share (WAL mode lets readers run while one writer writes). Every public method takes one lock
around one connection, because Gradio and FastAPI call handlers from worker threads and a sqlite3
connection is not safe to share unguarded. Low-level sqlite3 failures are turned into a one-line
:class:`StoreError` that says what to do, so the UI can show it instead of a traceback.

Schema changes are named migration steps (``sqlite_utils.Migrations``, in :mod:`routellm_demo.schema`):
a database made by an older version gains the new steps on open instead of breaking.

Why one class for every table: each method is one short transaction under the one lock, and the
vote path writes battles and arena_pending in one transaction; splitting the tables across classes
would split that lock. What grows the module is the guarding (checks, one-line errors), not logic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import stat
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from sqlite_utils import Database

from routellm_demo.battles import ARENA_SOURCE, WINNERS  # noqa: F401 (ARENA_SOURCE: store's name for it)
from routellm_demo.errors import UserError
from routellm_demo.schema import MIGRATIONS, STEP_NAMES

STRONG_SIDES = ("a", "b", None)
ROLES = ("strong", "weak")
USAGE_SOURCES = ("api", "tokenizer", "estimate")
LOG_SOURCES = ("app", "server", "cli", "sdk")

_BATTLE_COLUMNS = (
    "uid", "prompt", "prompt_sha256", "model_a", "model_b", "winner", "strong_side",
    "source", "created_at", "session_id", "meta", "flags",
)
_LOG_COLUMNS = (
    "created_at", "session_id", "prompt_sha256", "router", "threshold", "score", "chosen_role",
    "chosen_model", "fallback_from", "prompt_tokens", "completion_tokens", "usage_source", "cost",
    "strong_cost", "latency_ms", "ttft_ms", "routing_ms", "error", "source", "budget",
)
_BATTLE_FIELDS = {
    "prompt", "model_a", "model_b", "winner", "source", "strong_side", "uid", "session_id", "meta",
    "created_at", "flags",
}
_CHUNK = 500  # rows per executemany / IN (...) query: well under SQLite's variable limit

PENDING_STATUSES = ("asked", "answered", "failed", "voted")


class StoreError(UserError, RuntimeError):
    """The database cannot be used; the message is one line and says what to do. A server answers
    503: nothing the caller did is wrong, and a retry may succeed."""

    status = 503


def prompt_sha256(text: str) -> str:
    """The key that ties a prompt to its battles, cached embedding and log rows."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _check_text(name: str, value: Any, *, required: bool = True) -> str | None:
    """Reject what SQLite would choke on later (lone surrogates) with a message naming the field."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{name} contains invalid unicode (lone surrogate at position {exc.start}); "
            "decode input with errors='replace' first"
        ) from None
    return value


def _battle_row(
    *, prompt, model_a, model_b, winner, source, strong_side=None, uid=None, session_id=None,
    meta=None, created_at=None, flags=None,
) -> tuple:
    """Validate one battle at the boundary and return it in _BATTLE_COLUMNS order."""
    _check_text("prompt", prompt)
    _check_text("model_a", model_a)
    _check_text("model_b", model_b)
    _check_text("source", source)
    _check_text("uid", uid, required=False)
    _check_text("session_id", session_id, required=False)
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {WINNERS}, got {winner!r}")
    if strong_side not in STRONG_SIDES:
        raise ValueError(f"strong_side must be 'a', 'b' or None, got {strong_side!r}")
    if meta is not None and not isinstance(meta, Mapping):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    if flags is not None and (not isinstance(flags, str) or not flags.strip()):
        raise ValueError(f"flags must be a non-empty string or None, got {flags!r}")
    meta_json = json.dumps(dict(meta), ensure_ascii=False) if meta else None
    if meta_json is not None:
        _check_text("meta", meta_json)
    return (
        uid, prompt, prompt_sha256(prompt), model_a, model_b, winner, strong_side, source,
        created_at or utc_now(), session_id, meta_json, flags,
    )


def _is_read_only(path: Path) -> bool:
    """True if the mode bits deny writing. Checked explicitly so a chmod'ed file is respected even
    when running as root, where the OS would let SQLite write anyway."""
    mode = path.stat().st_mode
    return not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


class Store:
    """Battles, the embedding cache and the routing log in one SQLite file; safe across threads."""

    def __init__(self, path: str | Path, *, readonly: bool = False, timeout: float = 5.0,
                 count_flagged: bool = False):
        self.path = Path(path)
        # Flagged votes (battles.flags set: routellm_demo.hygiene) are left out of what battles() and the
        # change feed give the routers and the ratings, unless this is set (arena.count_flagged_votes).
        self.count_flagged = count_flagged
        self.readonly = readonly
        self.timeout = timeout
        self._lock = threading.RLock()
        conn = self._connect()
        try:
            with self._lock:
                try:
                    self.db = Database(conn)
                    self._open_schema()
                except sqlite3.Error as exc:
                    raise self._error(exc) from exc
        except BaseException:
            conn.close()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        try:
            if self.readonly:
                if not path.is_file():
                    raise StoreError(f"no database at {path}: open it once without readonly to create it")
                uri = path.resolve().as_uri() + "?mode=ro"
                return sqlite3.connect(uri, uri=True, timeout=self.timeout, check_same_thread=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            if _is_read_only(path.parent):
                raise StoreError(f"folder {path.parent} is read-only: make it writable or choose another path")
            if path.exists() and _is_read_only(path):
                raise StoreError(f"{path} is read-only: make it writable, or open it with readonly=True")
            return sqlite3.connect(str(path), timeout=self.timeout, check_same_thread=False)
        except OSError as exc:
            raise StoreError(f"cannot create {path}: {exc.strerror or exc}; choose a writable path") from exc
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _open_schema(self) -> None:
        self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # NOTADB surfaces here
        known = set(STEP_NAMES)
        unknown = [m.name for m in MIGRATIONS.applied(self.db) if m.name not in known]
        if unknown:
            raise StoreError(f"{self.path} was written by a newer routellm_demo ({unknown[-1]}): upgrade the package")
        if self.readonly:
            if MIGRATIONS.pending(self.db):
                raise StoreError(f"{self.path} has an older schema: open it once without readonly to migrate it")
            return
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; avoids an fsync per commit
        if MIGRATIONS.pending(self.db):
            # Hold the write lock for the whole upgrade, so an app and a server opening a fresh
            # file at the same moment migrate it once (the second waits, then finds nothing to do).
            self.db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS.apply(self.db)
            except BaseException:
                self.db.rollback()
                raise
            self.db.commit()

    def _error(self, exc: sqlite3.Error) -> Exception:
        """Turn a sqlite3 error into one line that tells the user what to do."""
        if isinstance(exc, sqlite3.IntegrityError):
            return ValueError(f"rejected by the database: {exc}")
        name = getattr(exc, "sqlite_errorname", "") or ""
        p = self.path
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreError(f"{p} is locked by another process (waited {self.timeout:g} s): close it or retry")
        if name.startswith("SQLITE_READONLY") and self.readonly:
            return StoreError(f"{p} was opened with readonly=True: open it without readonly to write")
        if name.startswith("SQLITE_READONLY"):
            return StoreError(f"{p} is read-only: fix file/folder permissions, or open with readonly=True to only read")
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StoreError(f"{p} is not a SQLite database or is corrupt: move it aside and a fresh one is created")
        if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
            return StoreError(f"cannot open {p}: check that its folder exists and is writable")
        if name.startswith("SQLITE_FULL"):
            return StoreError(f"disk full while writing {p}: free some space and retry")
        return StoreError(f"database error on {p}: {exc}")

    @contextlib.contextmanager
    def _access(self) -> Iterator[Database]:
        """Every touch of the connection goes through here: one lock, errors made readable."""
        with self._lock:
            try:
                yield self.db
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Group several of this store's writes into ONE transaction (all or nothing), e.g. battles and
        their embeddings; the methods called inside nest as savepoints. Other threads wait meanwhile."""
        with self._access() as db, db.atomic():
            yield self

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema facts (for tests and the status page) --------------------------------------------

    def schema_version(self) -> int:
        """Number of migration steps applied (equals SCHEMA_VERSION once opened read-write)."""
        with self._access() as db:
            return len(MIGRATIONS.applied(db))

    def journal_mode(self) -> str:
        with self._access() as db:
            return db.execute("PRAGMA journal_mode").fetchone()[0]

    # -- battles -------------------------------------------------------------------------------

    def add_battle(
        self, *, prompt: str, model_a: str, model_b: str, winner: str, source: str,
        strong_side: str | None = None, uid: str | None = None, session_id: str | None = None,
        meta: Mapping | None = None,
    ) -> int | None:
        """Insert one battle; returns its id, or None if a battle with this uid is already stored."""
        row = _battle_row(
            prompt=prompt, model_a=model_a, model_b=model_b, winner=winner, source=source,
            strong_side=strong_side, uid=uid, session_id=session_id, meta=meta,
        )
        with self._access() as db, db.atomic():
            cur = db.conn.execute(_INSERT_BATTLE, row)
            return cur.lastrowid if cur.rowcount == 1 else None

    def add_battles(self, rows: Iterable[Mapping]) -> int:
        """Insert many battles in ONE transaction (all or nothing); returns how many were new.

        Rows are validated as they stream in; a bad row raises ValueError and rolls back the lot,
        so an import never leaves half a benchmark behind.
        """
        inserted = 0
        with self._access() as db, db.atomic():
            chunk: list[tuple] = []
            for r in rows:
                unknown = set(r) - _BATTLE_FIELDS
                if unknown:
                    raise ValueError(f"unknown battle fields: {sorted(unknown)}")
                chunk.append(_battle_row(**r))
                if len(chunk) >= _CHUNK:
                    inserted += db.conn.executemany(_INSERT_BATTLE, chunk).rowcount
                    chunk = []
            if chunk:
                inserted += db.conn.executemany(_INSERT_BATTLE, chunk).rowcount
        return inserted

    def battles(
        self, *, source: str | Iterable[str] | None = None, since_id: int | None = None,
        limit: int | None = None, include_flagged: bool | None = None,
    ) -> list[dict]:
        """Battles ordered by id; ``source`` may be one source or several; ``since_id`` is exclusive.
        Flagged votes only with ``include_flagged`` (default: the store's ``count_flagged``)."""
        where, params = [], []
        if not (self.count_flagged if include_flagged is None else include_flagged):
            where.append("flags IS NULL")
        if source is not None:
            sources = [source] if isinstance(source, str) else list(source)
            where.append(f"source IN ({','.join('?' * len(sources))})")
            params += sources
        if since_id is not None:
            where.append("id > ?")
            params.append(int(since_id))
        sql = "SELECT * FROM battles" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._access() as db:
            return [_decode_battle(r) for r in db.query(sql, params)]

    def battle(self, id: int) -> dict | None:
        with self._access() as db:
            rows = list(db.query("SELECT * FROM battles WHERE id = ?", [int(id)]))
        return _decode_battle(rows[0]) if rows else None

    # -- change feed ---------------------------------------------------------------------------

    def change_cursor(self) -> int:
        """The feed's position now: pass it to :meth:`changes_since` later to get what came after."""
        with self._access() as db:
            return int(db.execute("SELECT coalesce(max(seq), 0) FROM battle_changes").fetchone()[0])

    def changes_since(self, cursor: int) -> "BattleChanges":
        """Battles inserted and deleted (by any process) after ``cursor``, read in one snapshot.

        ``inserted`` holds the rows still present, by id; ``deleted`` counts deletions (a follower
        that saw any refits from the store instead of patching its state).
        """
        with self._access() as db:
            db.execute("BEGIN")  # one read snapshot: the rows match the cursor returned with them
            try:
                new_cursor = int(db.execute("SELECT coalesce(max(seq), 0) FROM battle_changes").fetchone()[0])
                ops = db.execute("SELECT battle_id, op FROM battle_changes WHERE seq > ? AND seq <= ? ORDER BY seq",
                                 [int(cursor), new_cursor]).fetchall()
                deleted = sum(1 for _, op in ops if op == "delete")
                ids = sorted({battle_id for battle_id, op in ops if op == "insert"})
                counted = "" if self.count_flagged else " AND flags IS NULL"  # what battles() gives, too
                rows = []
                for i in range(0, len(ids), _CHUNK):
                    part = ids[i:i + _CHUNK]
                    rows += db.query(f"SELECT * FROM battles WHERE id IN ({','.join('?' * len(part))}){counted} "
                                     "ORDER BY id", part)
            finally:
                db.execute("COMMIT")
        return BattleChanges(new_cursor, [_decode_battle(r) for r in rows], deleted)

    def count_flags(self, source: str = "arena-vote") -> dict[str, int]:
        """Votes of ``source`` by hygiene: "votes", "clean", "flagged", "trusted", and each flag's count
        (a vote with two flags counts under both)."""
        with self._access() as db:
            rows = db.execute("SELECT flags, json_extract(meta, '$.provenance.trusted') IS NOT NULL FROM battles "
                              "WHERE source = ?", [source]).fetchall()
        return flag_counts(rows)

    def count_battles(self) -> dict[str, int]:
        with self._access() as db:
            return {r["source"]: r["n"] for r in db.query(
                "SELECT source, count(*) AS n FROM battles GROUP BY source ORDER BY source")}

    # -- embedding cache -----------------------------------------------------------------------

    def get_embeddings(self, model: str, shas: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors for the given text hashes; misses are simply absent."""
        shas = list(dict.fromkeys(shas))
        out: dict[str, np.ndarray] = {}
        with self._access() as db:
            for i in range(0, len(shas), _CHUNK):
                part = shas[i:i + _CHUNK]
                sql = f"SELECT sha256, dim, vector FROM embeddings WHERE model = ? AND sha256 IN ({','.join('?' * len(part))})"
                for sha, dim, blob in db.execute(sql, [model, *part]):
                    vec = np.frombuffer(blob, "<f4")
                    if vec.shape[0] == dim:  # a truncated blob is a miss, not a crash
                        out[sha] = vec.astype(np.float32)
        return out

    def put_embeddings(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Store vectors (little-endian float32 blobs) in one transaction; replaces existing ones."""
        rows = []
        for sha, vec in vectors.items():
            arr = np.asarray(vec, dtype=np.float32)
            if arr.ndim != 1:
                raise ValueError(f"embedding for {sha} must be 1-D, got shape {arr.shape}")
            rows.append((model, sha, int(arr.shape[0]), arr.astype("<f4").tobytes()))
        with self._access() as db, db.atomic():
            db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, sha256, dim, vector) VALUES (?, ?, ?, ?)", rows)

    # -- routing log ---------------------------------------------------------------------------

    def log_decision(self, **fields: Any) -> int:
        """Record one routed request (columns of routing_log); returns the row id."""
        row = log_row(fields)
        cols = list(row)
        with self._access() as db, db.atomic():
            cur = db.conn.execute(
                f"INSERT INTO routing_log ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [row[c] for c in cols])
            return cur.lastrowid

    def recent_scores(self, router: str, limit: int) -> list[float]:
        """The scores ``router`` gave the latest ``limit`` logged requests (every process's, any mode),
        newest first: the traffic a budget threshold is read from."""
        with self._access() as db:
            rows = db.execute("SELECT score FROM routing_log WHERE router = ? AND score IS NOT NULL "
                              "ORDER BY id DESC LIMIT ?", [router, int(limit)]).fetchall()
        return [r[0] for r in rows]

    def recent_budget_routes(self, router: str, budget: float, limit: int) -> list[bool]:
        """For the latest ``limit`` requests ``router`` routed under the budget ``budget``: whether
        each went to the strong model (newest first)."""
        with self._access() as db:
            rows = db.execute("SELECT score >= threshold FROM routing_log WHERE router = ? AND budget = ? "
                              "AND score IS NOT NULL ORDER BY id DESC LIMIT ?",
                              [router, float(budget), int(limit)]).fetchall()
        return [bool(r[0]) for r in rows]

    def budget_log(self, limit: int = 5000) -> list[dict]:
        """The latest ``limit`` requests routed in budget mode, oldest first: id, created_at, router,
        budget (the target share) and strong (whether it went to the strong model)."""
        with self._access() as db:
            rows = list(db.query("SELECT id, created_at, router, budget, score >= threshold AS strong FROM routing_log "
                                 "WHERE budget IS NOT NULL AND score IS NOT NULL ORDER BY id DESC LIMIT ?",
                                 [int(limit)]))
        return rows[::-1]

    def decisions(self, *, session_id: str | None = None, limit: int | None = None) -> list[dict]:
        """Routing log rows, newest first."""
        sql, params = "SELECT * FROM routing_log", []
        if session_id is not None:
            sql += " WHERE session_id = ?"
            params.append(session_id)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._access() as db:
            return list(db.query(sql, params))

    def savings(self, session_id: str | None = None) -> dict:
        """What routing saved versus sending every answered request to the strong model, with the
        answers a fallback gave counted apart: a fallback is a failure, not a routing saving.

        Only answered requests count (a row with an ``error`` is no answer). An answer is *routed*
        when the model the router chose gave it, a *fallback* when that model failed and the other
        one answered (``fallback_from`` set). ``strong_cost`` is what the strong model would have
        cost for the same answer; where it is unknown it is taken as ``cost`` (a strong answer costs
        the same either way). Amounts in USD, percentages in percent:

        - ``requests``, ``strong_requests``, ``strong_share``: answers, those the strong model gave
          (fallbacks included), and their share.
        - ``spent``: what every answer cost. ``all_strong_cost``: what every answer would have cost
          from the strong model. ``all_strong_cost == spent + saved + fallback_cost_difference``.
        - ``routed_requests``, ``routed_spent``, ``routed_all_strong_cost``: the same over routed answers.
        - ``saved``: the routing saving, ``routed_all_strong_cost - routed_spent``: routed answers only.
        - ``saved_pct``: ``saved`` as a percentage of ``routed_all_strong_cost`` (0 when there is none).
        - ``fallback_requests``: answers given by the other model after the routed one failed;
          ``fallback_to_weak`` of them the weak model gave (the strong one failed), ``fallback_to_strong``
          the strong one (the weak one failed).
        - ``fallback_spent``: what the fallback answers cost. ``fallback_cost_difference``: their
          all-strong cost minus ``fallback_spent``: the money a failed strong model left unspent,
          which is not a saving (0 for a strong model standing in for a failed weak one).
        """
        sql = """SELECT count(*) AS requests,
                        coalesce(sum(chosen_role = 'strong'), 0) AS strong_requests,
                        coalesce(sum(fb), 0) AS fallback_requests,
                        coalesce(sum(fb AND chosen_role = 'weak'), 0) AS fallback_to_weak,
                        coalesce(sum(cost), 0.0) AS spent,
                        coalesce(sum(all_strong), 0.0) AS all_strong_cost,
                        coalesce(sum(CASE WHEN NOT fb THEN cost END), 0.0) AS routed_spent,
                        coalesce(sum(CASE WHEN NOT fb THEN all_strong END), 0.0) AS routed_all_strong_cost,
                        coalesce(sum(CASE WHEN fb THEN cost END), 0.0) AS fallback_spent,
                        coalesce(sum(CASE WHEN fb THEN all_strong END), 0.0) AS fallback_all_strong_cost
                 FROM (SELECT chosen_role, coalesce(cost, 0.0) AS cost,
                              coalesce(strong_cost, cost, 0.0) AS all_strong,
                              (fallback_from IS NOT NULL) AS fb
                       FROM routing_log WHERE error IS NULL{where})"""
        params: list = []
        where = ""
        if session_id is not None:
            where = " AND session_id = ?"
            params.append(session_id)
        with self._access() as db:
            r = next(db.query(sql.format(where=where), params))
        return savings_summary(r)

    # -- arena: pending battles and votes --------------------------------------------------------

    def add_pending(
        self, *, battle_id: str, session_id: str, prompt: str, model_a: str, model_b: str, strong_side: str,
        trusted: str | None = None, params: Mapping | None = None,
    ) -> None:
        """Record a battle that is being answered (status "asked"). ``trusted``: the trusted source it
        comes from (its vote is never flagged); ``params``: the generation settings it is answered with."""
        _check_text("trusted", trusted, required=False)
        for name, value in (("battle_id", battle_id), ("session_id", session_id), ("prompt", prompt),
                            ("model_a", model_a), ("model_b", model_b)):
            _check_text(name, value)
        if strong_side not in ("a", "b"):
            raise ValueError(f"strong_side must be 'a' or 'b', got {strong_side!r}")
        with self._access() as db, db.atomic():
            db.conn.execute(
                "INSERT INTO arena_pending (battle_id, session_id, prompt, model_a, model_b, strong_side, status, "
                "created_at, trusted, params) VALUES (?, ?, ?, ?, ?, ?, 'asked', ?, ?, ?)",
                (battle_id, session_id, prompt, model_a, model_b, strong_side, utc_now(), trusted,
                 json.dumps(dict(params), sort_keys=True) if params else None))

    def pending(self, battle_id: str) -> dict | None:
        """One arena battle (any status), or None."""
        with self._access() as db:
            rows = list(db.query("SELECT * FROM arena_pending WHERE battle_id = ?", [battle_id]))
        return rows[0] if rows else None

    def finish_pending(self, battle_id: str, *, answer_a: str | None, answer_b: str | None,
                       error: str | None = None, sw_score: float | None = None) -> bool:
        """Store both answers ("answered", votable) or the failure ("failed"); only from "asked".
        ``sw_score``: the live router's score for the prompt at that moment (None: not computed)."""
        for name, value in (("answer_a", answer_a), ("answer_b", answer_b), ("error", error)):
            _check_text(name, value, required=False)
        if sw_score is not None and not (isinstance(sw_score, float) and 0.0 <= sw_score <= 1.0):
            raise ValueError(f"sw_score must be a float in [0, 1] or None, got {sw_score!r}")
        status = "failed" if error else "answered"
        with self._access() as db, db.atomic():
            cur = db.conn.execute(
                "UPDATE arena_pending SET status = ?, answer_a = ?, answer_b = ?, error = ?, answered_at = ?, "
                "sw_score = ? WHERE battle_id = ? AND status = 'asked'",
                (status, answer_a, answer_b, error, utc_now(), sw_score, battle_id))
            return cur.rowcount == 1

    def record_vote(self, *, battle_id: str, session_id: str, outcome: str, battle: Mapping,
                    visitor: str | None = None) -> int | None:
        """In ONE transaction: insert the battle row, mark the pending battle voted and (with ``visitor``,
        a salted hash) remember who cast it, for duplicate checks until the retention period ends.

        Returns the new battle's id, or None (and nothing written) when the pending battle is not
        this session's, not "answered" (unknown, already voted, failed) or the uid is taken; the
        caller checks first to give a clear reason, this guard settles races between two votes.
        """
        unknown = set(battle) - _BATTLE_FIELDS
        if unknown:
            raise ValueError(f"unknown battle fields: {sorted(unknown)}")
        row = _battle_row(**battle)
        try:
            with self._access() as db, db.atomic():
                cur = db.conn.execute(_INSERT_BATTLE, row)
                if cur.rowcount != 1:
                    raise _Abort
                new_id = cur.lastrowid
                cur = db.conn.execute(
                    "UPDATE arena_pending SET status = 'voted', outcome = ?, battle_row_id = ?, voted_at = ? "
                    "WHERE battle_id = ? AND session_id = ? AND status = 'answered'",
                    (outcome, new_id, utc_now(), battle_id, session_id))
                if cur.rowcount != 1:
                    raise _Abort
                if visitor is not None:
                    db.conn.execute("INSERT INTO vote_visitors (battle_id, visitor, prompt_sha256, created_at) "
                                    "VALUES (?, ?, ?, ?)", (new_id, visitor, row[2], utc_now()))
                return new_id
        except _Abort:
            return None

    # -- visitors: salt, shared rate windows, who voted on what (salted hashes only) ------------------

    def visitor_salt(self) -> str:
        """The salt of visitor hashes, made once per store so every process computes the same keys."""
        import secrets

        with self._access() as db, db.atomic():
            db.conn.execute("INSERT OR IGNORE INTO store_secrets (name, value) VALUES ('visitor_salt', ?)",
                            (secrets.token_hex(32),))
            return db.conn.execute("SELECT value FROM store_secrets WHERE name = 'visitor_salt'").fetchone()[0]

    def hit_rate(self, key: str, kind: str, *, max_events: int, window_s: float, now: float,
                 purge: bool = False) -> float | None:
        """Count one ``kind`` event for ``key`` at ``now`` (epoch seconds) unless ``key`` already had
        ``max_events`` in the last ``window_s``: then nothing is counted and the seconds to wait are
        returned. One immediate transaction, so processes racing for the last slot cannot both get it.
        ``purge`` also drops this kind's events older than the window (anyone's)."""
        with self._access() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if purge:
                    db.conn.execute("DELETE FROM rate_events WHERE kind = ? AND at <= ?", (kind, now - window_s))
                rows = db.conn.execute("SELECT at FROM rate_events WHERE key = ? AND kind = ? AND at > ? ORDER BY at",
                                       (key, kind, now - window_s)).fetchall()
                if len(rows) >= max_events:
                    wait = rows[len(rows) - max_events][0] + window_s - now
                else:
                    wait = None
                    db.conn.execute("INSERT INTO rate_events (key, kind, at) VALUES (?, ?, ?)", (key, kind, now))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return wait

    def visitor_voted(self, visitor: str, prompt_sha: str) -> bool:
        """Whether ``visitor`` (a salted hash) already voted on this prompt (within the retention period)."""
        with self._access() as db:
            return db.execute("SELECT 1 FROM vote_visitors WHERE visitor = ? AND prompt_sha256 = ? LIMIT 1",
                              (visitor, prompt_sha)).fetchone() is not None

    def voter_votes(self, limit: int = 5000) -> list[dict]:
        """The latest ``limit`` clean arena votes whose visitor is still known: id, visitor (salted
        hash), prompt, winner, strong_side, trusted (the trusted source or None), oldest first. For
        the anomalous-voter check."""
        with self._access() as db:
            rows = list(db.query(
                "SELECT b.id, v.visitor, b.prompt, b.winner, b.strong_side, "
                "json_extract(b.meta, '$.provenance.trusted') AS trusted FROM battles b "
                "JOIN vote_visitors v ON v.battle_id = b.id WHERE b.source = ? AND b.flags IS NULL "
                "ORDER BY b.id DESC LIMIT ?", [ARENA_SOURCE, int(limit)]))
        return rows[::-1]

    def flag_votes(self, ids: Iterable[int], flag: str) -> int:
        """Add ``flag`` to these battles' flags in one transaction; returns how many changed. A vote
        that was clean reaches the change feed as a delete (schema: ``battles_flagged``)."""
        ids = [int(i) for i in ids]
        changed = 0
        with self._access() as db, db.atomic():
            for i in range(0, len(ids), _CHUNK):
                part = ids[i:i + _CHUNK]
                changed += db.conn.execute(
                    f"UPDATE battles SET flags = CASE WHEN flags IS NULL THEN ? ELSE flags || ',' || ? END "
                    f"WHERE id IN ({','.join('?' * len(part))}) AND (flags IS NULL OR instr(flags, ?) = 0)",
                    [flag, flag, *part, flag]).rowcount
        return changed

    def purge_vote_visitors(self, before: str) -> int:
        """Forget the visitor of every vote cast before ``before`` (ISO time); returns how many."""
        with self._access() as db, db.atomic():
            return db.conn.execute("DELETE FROM vote_visitors WHERE created_at < ?", (before,)).rowcount

    def count_pending(self) -> dict[str, int]:
        """Arena battles by status."""
        with self._access() as db:
            return {r["status"]: r["n"] for r in db.query(
                "SELECT status, count(*) AS n FROM arena_pending GROUP BY status ORDER BY status")}

    def delete_arena_votes(self) -> dict[str, int]:
        """Delete every arena vote (battles of source "arena-vote") and every arena battle, in one
        transaction. Returns how many of each were deleted."""
        with self._access() as db, db.atomic():
            votes = db.conn.execute("DELETE FROM battles WHERE source = ?", (ARENA_SOURCE,)).rowcount
            pending = db.conn.execute("DELETE FROM arena_pending").rowcount
        return {"votes": votes, "pending": pending}


@dataclass(frozen=True)
class BattleChanges:
    """What :meth:`Store.changes_since` saw: the new cursor, rows inserted, and how many were deleted."""

    cursor: int
    inserted: list[dict]
    deleted: int

    def __bool__(self) -> bool:
        return bool(self.inserted or self.deleted)


class _Abort(Exception):
    """Raised inside a transaction to roll it back."""


_INSERT_BATTLE = (
    f"INSERT OR IGNORE INTO battles ({', '.join(_BATTLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_BATTLE_COLUMNS))})"
)


def _decode_battle(row: dict) -> dict:
    row["meta"] = json.loads(row["meta"]) if row.get("meta") else {}
    return row


def flag_counts(rows: Iterable) -> dict[str, int]:
    """:meth:`Store.count_flags`'s tally of (flags, trusted) rows (both backends)."""
    out = {"votes": 0, "clean": 0, "flagged": 0, "trusted": 0}
    for flags, trusted in rows:
        out["votes"] += 1
        out["trusted"] += int(bool(trusted))
        if not flags:
            out["clean"] += 1
            continue
        out["flagged"] += 1
        for flag in flags.split(","):
            out[flag] = out.get(flag, 0) + 1
    return out


def log_row(fields: Mapping[str, Any]) -> dict:
    """A routing_log row from :meth:`Store.log_decision`'s fields, checked (both backends)."""
    unknown = set(fields) - set(_LOG_COLUMNS)
    if unknown:
        raise ValueError(f"unknown routing_log fields: {sorted(unknown)}")
    for name, allowed in (("chosen_role", ROLES), ("usage_source", USAGE_SOURCES), ("source", LOG_SOURCES)):
        if fields.get(name) is not None and fields[name] not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {fields[name]!r}")
    for name, value in fields.items():
        if isinstance(value, str):
            _check_text(name, value, required=False)
    row = dict(fields)
    row.setdefault("created_at", utc_now())
    if not row.get("error"):
        row["error"] = None
    return row


def savings_summary(r: Mapping) -> dict:
    """:meth:`Store.savings`'s figures from the one row of sums its query returns (both backends' query)."""
    requests, strong = int(r["requests"]), int(r["strong_requests"])
    fallbacks, to_weak = int(r["fallback_requests"]), int(r["fallback_to_weak"])
    spent, all_strong = float(r["spent"]), float(r["all_strong_cost"])
    fb_spent, fb_all_strong = float(r["fallback_spent"]), float(r["fallback_all_strong_cost"])
    routed_spent, routed_all_strong = float(r["routed_spent"]), float(r["routed_all_strong_cost"])
    saved = routed_all_strong - routed_spent
    return {
        "requests": requests,
        "strong_requests": strong,
        "strong_share": strong / requests if requests else 0.0,
        "spent": spent,
        "all_strong_cost": all_strong,
        "saved": saved,
        "saved_pct": 100.0 * saved / routed_all_strong if routed_all_strong > 0 else 0.0,
        "routed_requests": requests - fallbacks,
        "routed_spent": routed_spent,
        "routed_all_strong_cost": routed_all_strong,
        "fallback_requests": fallbacks,
        "fallback_to_weak": to_weak,
        "fallback_to_strong": fallbacks - to_weak,
        "fallback_spent": fb_spent,
        "fallback_cost_difference": fb_all_strong - fb_spent,
    }


def open_store(target: str | Path, **kw: Any) -> "Store":
    """The store a ``db_path`` setting names: a path is a SQLite file (:class:`Store`), a
    ``postgresql://`` URL a PostgreSQL database (:class:`routellm_demo.store_postgres.PostgresStore`,
    the same interface). Keyword arguments (``readonly``, ``timeout``, ``count_flagged``) go to either."""
    from routellm_demo.config import is_database_url

    if is_database_url(target):
        from routellm_demo.store_postgres import PostgresStore

        return PostgresStore(str(target), **kw)  # type: ignore[return-value]
    return Store(target, **kw)


def index_dir_for(target: str | Path, cache_dir: Path) -> Path:
    """Where a store's persisted router index lives: beside a SQLite file (``<db>.index/``); for a
    database URL, on this machine under ``cache_dir``, one folder per database (each replica keeps its own)."""
    from routellm_demo.config import is_database_url

    if is_database_url(target):
        from routellm_demo.store_postgres import redact

        return Path(cache_dir) / "index" / hashlib.sha256(redact(str(target)).encode()).hexdigest()[:16]
    db = Path(target)
    return db.with_name(db.name + ".index")
