"""Config's schema pinned from outside: every TOML key and environment variable still sets the same
field with the same type, and the dataclass defaults are what load_config gives when nothing is set."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from routellm_demo.config import LOCAL_MODELS, REPO_ROOT, SETTINGS, Config, ConfigError, ModelEndpoint, load_config

HOME = {"HOME": "/home/tester"}
TYPE_WORDS = {str: "a string", float: "a number", int: "an integer", bool: "true or false", Path: "a path"}

# TOML key, ROUTELLM_DEMO_ suffix, Config attribute, a value (not the default) as the variable and as read
SCALARS = [
    ("router", "ROUTER", "router", "elo", "elo"),
    ("threshold", "THRESHOLD", "threshold", "0.25", 0.25),
    ("budget.window", "BUDGET_WINDOW", "budget_window", "50", 50),
    ("routing.context", "ROUTING_CONTEXT", "routing_context", "context", "context"),
    ("db_path", "DB", "db_path", "/srv/x.db", Path("/srv/x.db")),
    ("checkpoint_dir", "CHECKPOINT_DIR", "checkpoint_dir", "/srv/ckpt", Path("/srv/ckpt")),
    ("eval_dir", "EVAL_DIR", "eval_dir", "/srv/eval", Path("/srv/eval")),
    ("fallback", "FALLBACK", "fallback", "no", False),
    ("seed", "SEED", "seed", "off", False),
    ("server.host", "HOST", "host", "0.0.0.0", "0.0.0.0"),
    ("server.port", "PORT", "port", "7861", 7861),
    ("limits.max_prompt_chars", "MAX_PROMPT_CHARS", "max_prompt_chars", "100", 100),
    ("limits.max_turns", "MAX_TURNS", "max_turns", "3", 3),
    ("limits.requests_per_minute", "REQUESTS_PER_MINUTE", "requests_per_minute", "5", 5),
    ("limits.visitor_requests_per_minute", "VISITOR_REQUESTS_PER_MINUTE", "visitor_requests_per_minute", "7", 7),
    ("limits.visitor_votes_per_hour", "VISITOR_VOTES_PER_HOUR", "visitor_votes_per_hour", "9", 9),
    ("limits.trusted_proxies", "TRUSTED_PROXIES", "trusted_proxies", "10.0.0.1", "10.0.0.1"),
    ("limits.visitor_retention_days", "VISITOR_RETENTION_DAYS", "visitor_retention_days", "7", 7.0),
    ("arena.min_vote_seconds", "MIN_VOTE_SECONDS", "min_vote_seconds", "1.5", 1.5),
    ("arena.count_flagged_votes", "COUNT_FLAGGED_VOTES", "count_flagged_votes", "yes", True),
    ("arena.trusted_voters", "TRUSTED_VOTERS", "trusted_voters", "127.0.0.1", "127.0.0.1"),
    ("arena.anomaly_check_every", "ANOMALY_CHECK_EVERY", "anomaly_check_every", "0", 0),
    ("arena.prompt_pool", "PROMPT_POOL", "prompt_pool", "/srv/pool.txt", Path("/srv/pool.txt")),
    ("local.cache_dir", "MODEL_CACHE", "model_cache_dir", "/srv/cache", Path("/srv/cache")),
    ("local.n_ctx", "LOCAL_N_CTX", "local_n_ctx", "512", 512),
    ("local.n_threads", "LOCAL_THREADS", "local_n_threads", "2", 2),
    ("local.start_timeout", "LOCAL_START_TIMEOUT", "local_start_timeout", "30", 30.0),
    ("sw_ranking.base", "SW_BASE", "sw_base", "4", 4.0),
    ("sw_ranking.scale", "SW_SCALE", "sw_scale", "2", 2.0),
    ("sw_ranking.normalize", "SW_NORMALIZE", "sw_normalize", "one", "one"),
    ("sw_ranking.text_weight", "SW_TEXT_WEIGHT", "sw_text_weight", "0", 0.0),
    ("sw_ranking.vote_weight", "SW_VOTE_WEIGHT", "sw_vote_weight", "5", 5.0),
]
# endpoint field, a value as the variable and as read (with base_url and model set: a remote endpoint)
ENDPOINT_FIELDS = [
    ("name", "Big", "Big"), ("model", "m2", "m2"), ("base_url", "https://x.example/v1", "https://x.example/v1"),
    ("api_key_env", "MY_KEY", "MY_KEY"), ("input_price", "1.5", 1.5), ("output_price", "2", 2.0),
    ("max_tokens", "64", 64), ("timeout", "9", 9.0), ("temperature", "0.7", 0.7), ("api", "completion", "completion"),
    ("prompt_format", "fewshot", "fewshot"), ("params_millions", "7000", 7000.0),
]


def toml_value(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else json.dumps(
        value if isinstance(value, (int, float)) else str(value))


def empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "routellm_demo.toml"
    path.write_text("")
    return path


@pytest.mark.parametrize("key, env, attr, raw, value", SCALARS)
def test_every_setting_from_file_and_from_its_variable(tmp_path, key, env, attr, raw, value):
    assert getattr(load_config(empty_file(tmp_path), environ=dict(HOME, **{f"ROUTELLM_DEMO_{env}": raw})), attr) == value
    section, _, sub = key.rpartition(".")
    path = tmp_path / "set.toml"
    path.write_text((f"[{section}]\n" if section else "") + f"{sub} = {toml_value(value)}\n")
    assert getattr(load_config(path, environ=HOME), attr) == value
    # the type check, with the type named in the message
    path.write_text((f"[{section}]\n" if section else "") + f"{sub} = [1]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be {TYPE_WORDS[Path if isinstance(value, Path) else type(value)]}, got \[1\] "
                                        r"\(from set.toml\)$"):
        load_config(path, environ=HOME)


def test_sw_preset_from_file_and_variable(tmp_path):
    cfg = load_config(empty_file(tmp_path), environ=dict(HOME, ROUTELLM_DEMO_SW_PRESET="smooth"))
    assert cfg.sw_base == 3.0
    path = tmp_path / "set.toml"
    path.write_text('[sw_ranking]\npreset = "monotone"\n')
    assert load_config(path, environ=HOME).sw_normalize == "one"


@pytest.mark.parametrize("role", ["strong", "weak"])
@pytest.mark.parametrize("name, raw, value", ENDPOINT_FIELDS)
def test_every_endpoint_field_from_its_variable(tmp_path, role, name, raw, value):
    prefix = f"ROUTELLM_DEMO_{role.upper()}_"
    env = dict(HOME, **{prefix + "BASE_URL": "http://x/v1", prefix + "MODEL": "m", prefix + name.upper(): raw})
    assert getattr(getattr(load_config(empty_file(tmp_path), environ=env), role), name) == value


def test_endpoint_local_and_stop(tmp_path):
    cfg = load_config(empty_file(tmp_path), environ=dict(HOME, ROUTELLM_DEMO_STRONG_LOCAL="smollm2"))
    assert cfg.strong == LOCAL_MODELS["smollm2"]
    cfg = load_config(empty_file(tmp_path), environ=dict(HOME, ROUTELLM_DEMO_WEAK_STOP="x"))
    assert cfg.unknown_env == ("ROUTELLM_DEMO_WEAK_STOP",)  # a list does not fit one variable: file only
    path = tmp_path / "stop.toml"
    path.write_text('[weak]\nstop = ["\\nQ:"]\n')
    assert load_config(path, environ=HOME).weak.stop == ("\nQ:",)


def test_dataclass_defaults_are_what_load_config_gives(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/tester")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    path = empty_file(tmp_path)
    cfg = load_config(path, environ=HOME)
    assert cfg == Config(strong=LOCAL_MODELS["gemma3"], weak=LOCAL_MODELS["smollm2"], source=path.resolve())
    assert cfg.model_cache_dir == Path("/home/tester/.cache/routellm_demo")


def test_cache_dir_follows_xdg(tmp_path):
    cfg = load_config(empty_file(tmp_path), environ={"XDG_CACHE_HOME": "/srv/xdg", "HOME": "/home/tester"})
    assert cfg.model_cache_dir == Path("/srv/xdg/routellm_demo")


def test_schema_covers_every_setting():
    """Every Config field is a setting, an endpoint, or one of the few built specially."""
    special = {"strong", "weak", "role_map", "source", "unknown_env"}
    assert {s.field for s in SETTINGS if s.field} == {f.name for f in fields(Config)} - special
    assert sorted((s.key, s.env) for s in SETTINGS if s.field) == sorted((k, e) for k, e, *_ in SCALARS)
    assert {f.name for f in fields(ModelEndpoint)} == {n for n, *_ in ENDPOINT_FIELDS} | {"local", "stop"}


def test_example_file_names_every_setting():
    """routellm_demo.example.toml documents every key and variable (so a new setting gets documented)."""
    text = (REPO_ROOT / "routellm_demo.example.toml").read_text()
    for s in SETTINGS:
        section, _, sub = s.key.rpartition(".")
        assert not section or f"\n[{section}]\n" in text, s.key
        assert re.search(rf"^[#\s]*{sub} *=", text, re.M), s.key
        assert re.search(rf"_{s.env}\b", text), s.env

