"""The database's tables, as the named migration steps that make them.

Each step is a list of statements run in one transaction (``sqlite_utils.Migrations``): a store made
by an older version gains the newer steps when it is opened. Append new steps; never edit old ones.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

_STEPS: list[tuple[str, list[str]]] = [
    ("0001_battles", [
        """CREATE TABLE battles (
            id INTEGER PRIMARY KEY,
            uid TEXT UNIQUE,
            prompt TEXT NOT NULL,
            prompt_sha256 TEXT NOT NULL,
            model_a TEXT NOT NULL,
            model_b TEXT NOT NULL,
            winner TEXT NOT NULL CHECK (winner IN ('model_a', 'model_b', 'tie', 'tie (bothbad)')),
            strong_side TEXT CHECK (strong_side IN ('a', 'b')),
            source TEXT NOT NULL,
            created_at TEXT NOT NULL,
            session_id TEXT,
            meta TEXT
        )""",
        "CREATE INDEX idx_battles_prompt_sha256 ON battles (prompt_sha256)",
        "CREATE INDEX idx_battles_source ON battles (source)",
    ]),
    ("0002_embeddings", [
        """CREATE TABLE embeddings (
            model TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (model, sha256)
        )""",
    ]),
    ("0003_routing_log", [
        """CREATE TABLE routing_log (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            session_id TEXT,
            prompt_sha256 TEXT,
            router TEXT,
            threshold REAL,
            score REAL,
            chosen_role TEXT CHECK (chosen_role IN ('strong', 'weak')),
            chosen_model TEXT,
            fallback_from TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            usage_source TEXT CHECK (usage_source IN ('api', 'tokenizer', 'estimate')),
            cost REAL,
            strong_cost REAL,
            latency_ms REAL,
            ttft_ms REAL,
            routing_ms REAL,
            error TEXT,
            source TEXT
        )""",
        "CREATE INDEX idx_routing_log_session ON routing_log (session_id)",
    ]),
    # Arena battles waiting for a vote. The models and their positions live here, server-side, so a
    # vote names only the battle id and an outcome; the browser never says which model was which.
    ("0004_arena_pending", [
        """CREATE TABLE arena_pending (
            battle_id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            prompt TEXT NOT NULL,
            model_a TEXT NOT NULL,
            model_b TEXT NOT NULL,
            strong_side TEXT NOT NULL CHECK (strong_side IN ('a', 'b')),
            status TEXT NOT NULL CHECK (status IN ('asked', 'answered', 'failed', 'voted')),
            answer_a TEXT,
            answer_b TEXT,
            error TEXT,
            outcome TEXT,
            battle_row_id INTEGER,
            created_at TEXT NOT NULL,
            answered_at TEXT,
            voted_at TEXT
        )""",
        "CREATE INDEX idx_arena_pending_session ON arena_pending (session_id)",
    ]),
    # sw_ranking's score for the prompt when both answers were in: the router's prediction at the
    # moment the visitor saw the round, so a vote need not score the prompt twice (before and after).
    ("0005_arena_pending_sw_score", [
        "ALTER TABLE arena_pending ADD COLUMN sw_score REAL",
    ]),
    # The change feed: every insert into or delete from battles, in commit order, written by triggers
    # so that no writer (app, server, CLI, an older version's code path) can forget it. Other processes
    # follow it (:meth:`Store.changes_since`) to learn battles they did not write and to see deletes,
    # which polling the highest battle id cannot (and ids are reused after the newest is deleted).
    # SQLite runs one writer at a time, so AUTOINCREMENT order is commit order here. (On PostgreSQL,
    # sequence values can commit out of order: a follower there reads only below the oldest transaction
    # still in flight, pg_snapshot_xmin, so the cursor API stays the same.)
    ("0006_battle_changes", [
        """CREATE TABLE battle_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            battle_id INTEGER NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('insert', 'delete'))
        )""",
        """CREATE TRIGGER battles_inserted AFTER INSERT ON battles
           BEGIN INSERT INTO battle_changes (battle_id, op) VALUES (NEW.id, 'insert'); END""",
        """CREATE TRIGGER battles_deleted AFTER DELETE ON battles
           BEGIN INSERT INTO battle_changes (battle_id, op) VALUES (OLD.id, 'delete'); END""",
    ]),
    # Budget mode (budget.py) reads a router's most recent scores on every request, and the share of
    # strong calls its own requests realised: the target share each request was routed for, and an
    # index that makes "the last N rows of this router" a short range scan at any log size.
    ("0007_routing_log_budget", [
        "ALTER TABLE routing_log ADD COLUMN budget REAL",
        "CREATE INDEX idx_routing_log_router ON routing_log (router, id)",
    ]),
]
SCHEMA_VERSION = len(_STEPS)
STEP_NAMES = tuple(name for name, _ in _STEPS)


def _make_migrations() -> Migrations:
    migrations = Migrations("routellm_demo")
    for name, statements in _STEPS:

        def step(db: Database, statements: list[str] = statements) -> None:
            for sql in statements:
                db.execute(sql)

        migrations(name=name)(step)
    return migrations


MIGRATIONS = _make_migrations()


