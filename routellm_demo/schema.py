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
    # sequence values can commit out of order: there every battle writer takes one advisory lock first,
    # so the next seq is drawn only after the previous writer committed; routellm_demo/store_postgres.py.)
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
    # Labels a team can trust (issue 19). ``battles.flags``: why a vote may not count ("identity",
    # "duplicate", "too_fast"; comma-separated, NULL = clean), written with the vote and never hidden.
    # ``arena_pending.trusted``: the trusted source of a round (a gold-label replay, a load test), whose
    # vote is never flagged; ``params``: the generation settings the round was answered with.
    # ``vote_visitors``: the salted hash of the visitor behind each vote (duplicates are found by it),
    # kept apart from ``battles`` so it is never exported and can be purged after its retention period.
    # ``rate_events``: the per-visitor and per-session sliding windows every process shares.
    # ``store_secrets``: the visitor-hash salt, made once per store. ``battles_flagged``: a vote flagged
    # later (routellm_demo.anomaly) reaches the change feed as a delete.
    ("0008_visitors_and_vote_flags", [
        "ALTER TABLE battles ADD COLUMN flags TEXT",
        "ALTER TABLE arena_pending ADD COLUMN trusted TEXT",
        "ALTER TABLE arena_pending ADD COLUMN params TEXT",
        """CREATE TABLE vote_visitors (
            battle_id INTEGER PRIMARY KEY,
            visitor TEXT NOT NULL,
            prompt_sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX idx_vote_visitors_prompt ON vote_visitors (visitor, prompt_sha256)",
        "CREATE INDEX idx_vote_visitors_created ON vote_visitors (created_at)",
        """CREATE TRIGGER battles_deleted_visitor AFTER DELETE ON battles
           BEGIN DELETE FROM vote_visitors WHERE battle_id = OLD.id; END""",
        """CREATE TABLE rate_events (
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE INDEX idx_rate_events ON rate_events (key, kind, at)",
        """CREATE TABLE store_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        # A vote flagged after it was stored (the background anomalous-voter check) is a removal to the
        # routers and ratings of every process: the change feed carries it as a delete, so followers
        # refit from the store, which leaves it out.
        """CREATE TRIGGER battles_flagged AFTER UPDATE OF flags ON battles
           WHEN OLD.flags IS NULL AND NEW.flags IS NOT NULL
           BEGIN INSERT INTO battle_changes (battle_id, op) VALUES (NEW.id, 'delete'); END""",
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


