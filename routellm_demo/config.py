"""Configuration in one place: a TOML file, overridden by environment variables, checked at start.

Why one module: every other module takes a :class:`Config` (or a :class:`ModelEndpoint`) and never
reads the environment itself, so a deployment is described by one file plus a few variables, and a
typo fails at start with a one-line :class:`ConfigError` instead of at the first chat.

Precedence (highest first): environment variables, the TOML file, built-in defaults. The file is
the path given to :func:`load_config`, else ``$ROUTELLM_DEMO_CONFIG``, else ``routellm_demo.toml``
in the repository root if present. See ``routellm_demo.example.toml`` for every key.

Each setting is declared once, on its :class:`Config` field (TOML key, variable, check; the type and
default are the field's), and the endpoint tables are :class:`ModelEndpoint`'s fields: the accepted
keys, the variable names and the loader derive from those (:data:`SETTINGS`). Past 500 lines because
the schema, the loader and the checks belong together: a typo meets them all at start.

Secrets: an endpoint names the *environment variable* that holds its key (``api_key_env``); the key
itself is read only when a client is built (:meth:`ModelEndpoint.api_key`) and is never stored in a
dataclass, so it cannot leak through repr, errors or logs.

With no strong/weak endpoint configured, both default to the embedded local pair (two small GGUF
models served by llama-cpp-python, no key, no network). Their prices are *compute-proportional*
stand-ins (USD per 1M tokens = parameters in billions), not prices anyone charges.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields as dataclass_fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, get_args, get_origin, get_type_hints

from routellm_demo.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_NAME = "routellm_demo.toml"
ENV_PREFIX = "ROUTELLM_DEMO_"

APIS = ("chat", "completion")
PROMPT_FORMATS = ("fewshot",)  # each rendered, with its own stop strings, by llm.endpoints.PROMPT_FORMATS
ROLES = ("strong", "weak")

DEFAULT_ROLE_MAP = {"gpt-4-1106-preview": "strong", "mistralai/Mixtral-8x7B-Instruct-v0.1": "weak"}


class ConfigError(UserError, ValueError):
    """A configuration problem, stated in one line that says what to change. The operator's to fix,
    so a server answers 500, not a 4xx that would blame the caller's request."""

    status = 500


@dataclass(frozen=True)
class ModelEndpoint:
    """One model behind an OpenAI-compatible API, or one embedded local model (``base_url=None``).

    Prices are USD per 1M tokens. ``api="completion"`` is for base models without a usable chat
    template: the conversation is rendered as a prompt (``prompt_format``) and cut at ``stop``.
    """

    name: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    input_price: float = 0.0
    output_price: float = 0.0
    max_tokens: int = 512
    timeout: float = 60.0
    temperature: float | None = None  # default sampling temperature; None = the server's own
    api: str = "chat"
    prompt_format: str | None = None
    stop: tuple[str, ...] = ()
    local: str | None = None
    params_millions: float | None = None

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from ``api_key_env`` (None when the endpoint needs none).

        Read late, on purpose: the key lives only in the environment and in the client using it.
        """
        if self.api_key_env is None:
            return None
        env = os.environ if environ is None else environ
        value = env.get(self.api_key_env, "")
        if not value:
            where = self.base_url or "the local server"
            raise ConfigError(f"set {self.api_key_env} to the API key for {self.name} ({where})")
        return value


# The embedded local pair. Prices follow compute (USD per 1M tokens = params in billions), so the
# cost columns mean "relative compute", clearly not a market price.
LOCAL_MODELS: Mapping[str, ModelEndpoint] = MappingProxyType({
    "smollm2": ModelEndpoint(
        name="SmolLM2-135M-Instruct (local)", model="smollm2-135m-instruct", input_price=0.135, output_price=0.135,
        max_tokens=256, timeout=60.0, api="chat", local="smollm2", params_millions=135.0,
        temperature=0.2,  # the model card's recommendation; higher drifts off-topic
    ),
    "gemma3": ModelEndpoint(
        name="Gemma 3 270M base (local)", model="gemma-3-270m", input_price=0.27, output_price=0.27,
        max_tokens=256, timeout=60.0, api="completion", prompt_format="fewshot", stop=("\nUser:", "\n\n"),
        local="gemma3", params_millions=268.0,
        temperature=0.0,  # a 270M base model stays coherent only near greedy decoding
    ),
})
DEFAULT_LOCAL_ROLE = {"strong": "gemma3", "weak": "smollm2"}

# The sw_ranking router's weighting, defined here because the config selects it and imports no router
# (routers/sw_ranking.py imports these). Named parameter sets, ``SWRankingRouter(**SW_PRESETS[name])``:
# "sharp": the default, base 1e4: the encoder (embeddings.py: MiniLM's first two layers) puts prompts'
#   cosines closer together than full MiniLM did, so RouteLLM's base 10 weighs near and far battles
#   almost alike. A sweep of base 10..1e5 on the shared data (grouped 5-fold CV, one draw) rose
#   steadily on MMLU (.537, .546, .554, .561, .566) and stayed flat on GSM8K (.626 to .621); 1e4, not
#   1e5, because the clustered index's far-cluster sums err more under sharper kernels (SCALING.md).
# "routellm": RouteLLM's weighting (what the paper reports; it was the default with full MiniLM).
# "smooth": base 3 instead of 10, the best of a sweep on MMLU subjects kept out of the report (issue #8).
# "monotone": RouteLLM's base, the similarity divided by 1 instead of by its maximum, so adding a battle
#   never reweighs the others: a vote always moves its own prompt's score the voted way.
SW_PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "sharp": MappingProxyType({"base": 1e4, "scale": 10.0, "normalize": "max"}),
    "routellm": MappingProxyType({"base": 10.0, "scale": 10.0, "normalize": "max"}),
    "smooth": MappingProxyType({"base": 3.0, "scale": 10.0, "normalize": "max"}),
    "monotone": MappingProxyType({"base": 10.0, "scale": 10.0, "normalize": "one"}),
})
SW_DEFAULT_PRESET = "sharp"
SW_NORMALIZE = ("max", "one")
# How much the prompt's text counts (0: RouteLLM's embedding-only similarity). 0.3 after a sweep of
# 0-1 on the shared data (issue #8): GSM8K's APGR after 200 replayed votes, mean of seeds 0-4,
# .562 -> .594; its grouped-CV eval .582 -> .602; MMLU's eval .572 -> .566 (inside noise). 0.5 and
# more help GSM8K further but cost MMLU's eval .017 and more.
SW_TEXT_WEIGHT = 0.3
# How much a vote absorbed online (an arena vote of this app's pair) weighs against a stored or imported
# battle of the same similarity (issue 18). In a store of ~11,000 gold battles, 200 votes on a new domain
# carried ~3% of the kernel's weight and moved it little; times 30 they lifted APGR after 200 votes
# (simulate-votes --seed-store all-other, seeds 0-2) on professional_psychology .544 -> .582, moral_disputes
# .528 -> .548, GSM8K .547 -> .599 (10: .563 on the first; 100: .561, .552, .604). 1 = every battle alike.
SW_VOTE_WEIGHT = 30.0

# What a router reads of a conversation (routellm_demo/conversation.py defines the rule; here because the
# config selects it): "last_turn" (RouteLLM's: the last user message alone) or "context" (the last user
# message's embedding combined with the earlier user messages'). "last_turn" stays the default: on
# MT-Bench's second turns "context" did not win a paired bootstrap over questions (README, issue #16).
ROUTING_CONTEXTS = ("last_turn", "context")
DEFAULT_ROUTING_CONTEXT = "last_turn"


def default_db_path(data_root: Path = Path("/data")) -> Path:
    """``/data/routellm_demo.db`` when a writable /data exists (Hugging Face Spaces persistent
    storage survives restarts there), else ``data/routellm_demo.db`` in the repository."""
    if data_root.is_dir() and os.access(data_root, os.W_OK):
        return data_root / "routellm_demo.db"
    return REPO_ROOT / "data" / "routellm_demo.db"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Assembled model files go to the user's cache, so reinstalling the repo reuses them."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "routellm_demo"
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".cache" / "routellm_demo"


# ---- schema: each setting is declared once, on its Config field -------------------------------


def _setting(key: str, env: str, check: Callable[[Any], str | None] | None = None, **default) -> Any:
    """A Config field set by TOML ``key`` (dotted: "server.port") or by ``ROUTELLM_DEMO_<env>``; its
    type is the field's annotation, its default the field's. ``check(value)`` says what is wrong, or None."""
    return field(metadata={"key": key, "env": env, "check": check}, **default)


def parse_networks(text: str | None) -> tuple:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks; a bad entry is a ValueError naming it."""
    import ipaddress

    networks = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {part!r}") from None
    return tuple(networks)


def _addresses(v: str) -> str | None:
    """A comma-separated list of IP addresses or networks (CIDR), or empty."""
    try:
        parse_networks(v)
    except ValueError as e:
        return f"must be IP addresses or networks separated by commas ({e})"
    return None


def _at_least(low: int) -> Callable[[Any], str | None]:
    return lambda v: f"must be at least {low}, got {v}" if v < low else None


@dataclass(frozen=True)
class Config:
    """The whole runtime configuration. Paths are absolute."""

    strong: ModelEndpoint
    weak: ModelEndpoint
    router: str = _setting("router", "ROUTER", lambda v: None if v else "must not be empty", default="classifier")
    threshold: float = _setting("threshold", "THRESHOLD",
                                lambda v: None if 0.0 <= v <= 1.0 else f"must be between 0 and 1, got {v}", default=0.5)
    # Budget mode (budget.py): how many of the latest requests a budget's threshold is read from. Smaller
    # follows a change in the traffic sooner; larger holds the share steadier.
    budget_window: int = _setting("budget.window", "BUDGET_WINDOW", _at_least(10), default=100)
    # What the router reads of a conversation: the last user turn, or it plus the earlier user turns.
    routing_context: str = _setting(
        "routing.context", "ROUTING_CONTEXT",
        lambda v: None if v in ROUTING_CONTEXTS else f"must be one of {', '.join(ROUTING_CONTEXTS)}, got {v!r}",
        default=DEFAULT_ROUTING_CONTEXT)
    # A SQLite file (the embedded default), or a postgresql:// URL for replicas sharing one database
    # (routellm_demo/store_postgres.py; the URL may carry a password: it is never logged in full).
    db_path: Path | str = _setting("db_path", "DB", default_factory=default_db_path)
    checkpoint_dir: Path = _setting("checkpoint_dir", "CHECKPOINT_DIR", default=REPO_ROOT / "data" / "checkpoints")
    # Where `eval` writes its runs by default, and where the app's Evaluation tab looks for them.
    eval_dir: Path = _setting("eval_dir", "EVAL_DIR", default=REPO_ROOT / "data" / "eval")
    fallback: bool = _setting("fallback", "FALLBACK", default=True)
    # Load the shipped seed of gold-labelled battles into an empty store at start, then fetch RouteLLM's
    # full public set in the background when online (routellm_demo/seed.py). Off: only your own labels.
    seed: bool = _setting("seed", "SEED", default=True)
    role_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_ROLE_MAP)))
    host: str = _setting("server.host", "HOST", default="127.0.0.1")
    port: int = _setting("server.port", "PORT", lambda v: None if 0 < v < 65536 else f"must be in 1..65535, got {v}",
                         default=6060)
    # Limits a public demo needs: bound prompt size, history sent upstream and per-session rate.
    max_prompt_chars: int = _setting("limits.max_prompt_chars", "MAX_PROMPT_CHARS", _at_least(1), default=8000)
    max_turns: int = _setting("limits.max_turns", "MAX_TURNS", _at_least(1), default=10)
    requests_per_minute: int = _setting("limits.requests_per_minute", "REQUESTS_PER_MINUTE", _at_least(1), default=20)
    # Per visitor (the client address; routellm_demo/visitors.py), held in the store so a new session,
    # another process or another replica does not reset them. trusted_proxies: the addresses whose
    # X-Forwarded-For is believed (comma-separated IPs or CIDRs; empty: the peer address is the visitor).
    visitor_requests_per_minute: int = _setting("limits.visitor_requests_per_minute", "VISITOR_REQUESTS_PER_MINUTE",
                                                _at_least(1), default=30)
    visitor_votes_per_hour: int = _setting("limits.visitor_votes_per_hour", "VISITOR_VOTES_PER_HOUR",
                                           _at_least(1), default=60)
    trusted_proxies: str = _setting("limits.trusted_proxies", "TRUSTED_PROXIES", _addresses, default="")
    visitor_retention_days: float = _setting("limits.visitor_retention_days", "VISITOR_RETENTION_DAYS",
                                             lambda v: "must be positive" if v <= 0 else None, default=30.0)
    # Vote hygiene (routellm_demo/hygiene.py): a vote sooner than min_vote_seconds after both answers were
    # in is flagged "too_fast"; flagged votes are stored but teach no router and move no leaderboard
    # unless count_flagged_votes. trusted_voters: visitor addresses (e.g. a load-test harness) whose votes
    # are marked trusted and never flagged.
    min_vote_seconds: float = _setting("arena.min_vote_seconds", "MIN_VOTE_SECONDS",
                                       lambda v: "must be at least 0" if v < 0 else None, default=3.0)
    count_flagged_votes: bool = _setting("arena.count_flagged_votes", "COUNT_FLAGGED_VOTES", default=False)
    trusted_voters: str = _setting("arena.trusted_voters", "TRUSTED_VOTERS", _addresses, default="")
    # The anomalous-voter check (routellm_demo/anomaly.py) runs in the background every this many votes
    # counted in this process; 0 = never.
    anomaly_check_every: int = _setting("arena.anomaly_check_every", "ANOMALY_CHECK_EVERY", _at_least(0), default=50)
    # A file of prompts to collect labels on (text lines, JSONL or CSV with a "prompt" column, as the
    # what-if reads them): the arena's "Suggest a question" picks from it the prompts whose votes teach the
    # routers most (routellm_demo/active.py). None: no pool, only the fixed examples.
    prompt_pool: Path | None = _setting("arena.prompt_pool", "PROMPT_POOL", default=None)
    # Embedded local models: where assembled GGUF files are cached, and llama.cpp runtime knobs.
    model_cache_dir: Path = _setting("local.cache_dir", "MODEL_CACHE", default_factory=default_cache_dir)
    local_n_ctx: int = _setting("local.n_ctx", "LOCAL_N_CTX", _at_least(256), default=2048)
    local_n_threads: int = _setting("local.n_threads", "LOCAL_THREADS", _at_least(1), default=1)
    local_start_timeout: float = _setting("local.start_timeout", "LOCAL_START_TIMEOUT",
                                          lambda v: "must be positive" if v <= 0 else None, default=120.0)
    # The sw_ranking router's similarity weighting: the app's live router and `simulate-votes` both build
    # it from these. Read as a group with the [sw_ranking] preset (check_sw_params). Default: the "sharp" preset.
    sw_base: float = _setting("sw_ranking.base", "SW_BASE", default=SW_PRESETS[SW_DEFAULT_PRESET]["base"])
    sw_scale: float = _setting("sw_ranking.scale", "SW_SCALE", default=SW_PRESETS[SW_DEFAULT_PRESET]["scale"])
    sw_normalize: str = _setting("sw_ranking.normalize", "SW_NORMALIZE",
                                 default=SW_PRESETS[SW_DEFAULT_PRESET]["normalize"])
    sw_text_weight: float = _setting("sw_ranking.text_weight", "SW_TEXT_WEIGHT", default=SW_TEXT_WEIGHT)
    sw_vote_weight: float = _setting("sw_ranking.vote_weight", "SW_VOTE_WEIGHT", default=SW_VOTE_WEIGHT)
    # Where the settings came from, and ROUTELLM_DEMO_* variables that matched nothing (likely typos).
    source: Path | None = None
    unknown_env: tuple[str, ...] = ()

    def endpoint(self, role: str) -> ModelEndpoint:
        """The endpoint playing ``role`` ("strong" or "weak")."""
        if role not in ROLES:
            raise ValueError(f"role must be 'strong' or 'weak', got {role!r}")
        return self.strong if role == "strong" else self.weak

    @property
    def is_local_pair(self) -> bool:
        return self.strong.local is not None and self.weak.local is not None

    def admin_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The admin token for destructive actions (reset, delete), from ROUTELLM_DEMO_ADMIN_TOKEN.

        Read late and never stored, like API keys; None means destructive actions are disabled.
        """
        env = os.environ if environ is None else environ
        return env.get(ENV_PREFIX + "ADMIN_TOKEN") or None

    def api_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The server's bearer token, from ROUTELLM_DEMO_API_TOKEN; None means no auth."""
        env = os.environ if environ is None else environ
        return env.get(ENV_PREFIX + "API_TOKEN") or None

    @property
    def sw_params(self) -> dict:
        """Keyword arguments for ``SWRankingRouter``."""
        return {"base": self.sw_base, "scale": self.sw_scale, "normalize": self.sw_normalize,
                "text_weight": self.sw_text_weight, "vote_weight": self.sw_vote_weight}

    @property
    def router_params(self) -> dict[str, dict]:
        """Per-router constructor arguments, for :class:`routellm_demo.router_set.RouterSet`."""
        return {"sw_ranking": self.sw_params}


def _kind(hint) -> type:
    """A field's annotation -> what :func:`_coerce` converts to (``str | None`` -> str, ``tuple[str, ...]`` -> tuple)."""
    if get_origin(hint) is tuple:
        return tuple
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if args else hint


@dataclass(frozen=True)
class Setting:
    """One value a file or a variable sets: dotted TOML key, ``ROUTELLM_DEMO_`` suffix, type, Config field."""

    key: str
    env: str
    kind: type
    field: str | None = None  # None: sw_ranking.preset, which picks several fields
    check: Callable[[Any], str | None] | None = None


_HINTS = get_type_hints(Config)
SETTINGS: tuple[Setting, ...] = (
    *(Setting(f.metadata["key"], f.metadata["env"], _kind(_HINTS[f.name]), f.name, f.metadata["check"])
      for f in dataclass_fields(Config) if "key" in f.metadata),
    Setting("sw_ranking.preset", "SW_PRESET", str),
)
# The tables [strong] and [weak] take every ModelEndpoint field; variables ROUTELLM_DEMO_<ROLE>_<FIELD>.
_ENDPOINT_KINDS = {name: _kind(hint) for name, hint in get_type_hints(ModelEndpoint).items()}
_TABLES: dict[str, list[str]] = {role: list(_ENDPOINT_KINDS) for role in ROLES}  # [table] -> its keys
for _s in SETTINGS:
    if "." in _s.key:
        _TABLES.setdefault(_s.key.split(".")[0], []).append(_s.key.split(".")[1])
_TOP_KEYS = [s.key for s in SETTINGS if "." not in s.key] + ["role_map"]
_ENV_KEYS = {s.env: s.key for s in SETTINGS} | {  # a list (stop) does not fit one variable: file only
    f"{r.upper()}_{f.upper()}": f"{r}.{f}" for r in ROLES for f, k in _ENDPOINT_KINDS.items() if k is not tuple}
_ENV_META = {"CONFIG", "ADMIN_TOKEN", "API_TOKEN"}  # secrets: read late, never stored

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# ---- loading ----------------------------------------------------------------------------------


def load_config(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply ``ROUTELLM_DEMO_*`` overrides, validate, return a Config."""
    env = os.environ if environ is None else environ
    file_path = _config_path(path, env)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if file_path is not None:
        _flatten(_read_toml(file_path), values, origin, file_path.name)
    unknown_env = _apply_env(env, values, origin)
    return _build(values, origin, file_path, env, unknown_env)


def _config_path(path, env: Mapping[str, str]) -> Path | None:
    given = path if path is not None else env.get(ENV_PREFIX + "CONFIG") or None
    if given is not None:
        p = Path(given).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p.resolve()
    default = REPO_ROOT / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}: not UTF-8 text; a TOML config file must be UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None


def _unknown(key: str, known, where: str) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _flatten(doc: dict, values: dict, origin: dict, where: str) -> None:
    """TOML document -> dotted keys, rejecting unknown keys (they are almost always typos)."""
    for key, value in doc.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a table ([{key}])")
            for sub, sub_value in value.items():
                dotted = f"{key}.{sub}"
                if sub == "api_key" and key in ROLES:
                    # never echo the value: it is probably a real key
                    raise ConfigError(
                        f"{where}: {dotted} is not allowed: put the key in an environment variable "
                        f"and set {key}.api_key_env to that variable's name"
                    )
                if sub not in _TABLES[key]:
                    raise _unknown(dotted, _TABLES[key], where)
                values[dotted], origin[dotted] = sub_value, where
        elif key == "role_map" and not isinstance(value, dict):
            raise ConfigError(f"{where}: 'role_map' must be a table of model name = \"strong\"|\"weak\"")
        elif key in _TOP_KEYS:
            values[key], origin[key] = value, where
        else:
            raise _unknown(key, [*_TOP_KEYS, *_TABLES], where)


def _apply_env(env: Mapping[str, str], values: dict, origin: dict) -> tuple[str, ...]:
    unknown = []
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        suffix = var[len(ENV_PREFIX):]
        if suffix in _ENV_META:
            continue
        if suffix not in _ENV_KEYS:
            unknown.append(var)
            continue
        if raw == "":  # an empty variable means "not set" (handy in .env files and compose)
            continue
        values[_ENV_KEYS[suffix]], origin[_ENV_KEYS[suffix]] = raw, var
    return tuple(sorted(unknown))


def _coerce(key: str, value: Any, kind: type, origin: Mapping[str, str]):
    """Convert a file or env value to ``kind``; env values arrive as strings."""
    where = origin.get(key, "default")
    bad = ConfigError(f"{key} must be {_KIND_NAMES[kind]}, got {_show(key, value)} (from {where})")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if kind in (int, float):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise bad from None
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise bad
            value = int(value)
        if not isinstance(value, (int, float)):
            raise bad
        return kind(value)
    if kind is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise bad
    if kind is Path:
        if not isinstance(value, str) or not value:
            raise bad
        if key in _URL_KEYS and "://" in value:
            if not is_database_url(value.strip()):
                raise ConfigError(f"{key} must be a path or a postgresql:// URL, got {value.split('://')[0]}:// "
                                  f"(from {where})")
            return value.strip()
        p = Path(value).expanduser()
        if not p.is_absolute():
            # paths in the file are relative to the file; from the environment, to the cwd
            base = origin.get(f"{key}@dir")
            p = Path(base) / p if base else p.resolve()
        return p
    if not isinstance(value, str):
        raise bad
    return value.strip()


_URL_KEYS = {"db_path"}  # Path settings that may also be a database URL


def is_database_url(value: Any) -> bool:
    """Whether a db_path setting names a PostgreSQL database rather than a SQLite file."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", tuple: "a list of strings",
               Path: "a path", str: "a string"}


def _show(key: str, value: Any) -> str:
    """A value for an error message, hiding anything that could be a secret."""
    if "api_key" in key:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _build(values: dict, origin: dict, file_path: Path | None, env: Mapping[str, str],
           unknown_env: tuple[str, ...]) -> Config:
    if file_path is not None:
        for key, src in list(origin.items()):
            if src == file_path.name:
                origin[f"{key}@dir"] = str(file_path.parent)

    given: dict[str, Any] = {}  # Config fields set by the file or a variable; the rest keep their default
    sw: dict[str, Any] = {}  # the [sw_ranking] table: a preset and overrides, checked together
    for s in SETTINGS:
        if s.key not in values:
            continue
        value = _coerce(s.key, values[s.key], s.kind, origin)
        if s.key.startswith("sw_ranking."):
            sw[s.key.split(".", 1)[1]] = value
            continue
        problem = s.check(value) if s.check else None
        if problem:
            raise ConfigError(f"{s.key} {problem} (from {origin.get(s.key, 'default')})")
        given[s.field] = value
    given.setdefault("model_cache_dir", default_cache_dir(env))  # the environment given, not this process's
    where = ", ".join(sorted({origin.get(f"sw_ranking.{k}", "default") for k in sw})) or "default"
    params = check_sw_params(sw, where)
    given.update({s.field: params[s.key.split(".", 1)[1]] for s in SETTINGS
                  if s.field and s.key.startswith("sw_ranking.")})
    return Config(strong=_endpoint("strong", values, origin), weak=_endpoint("weak", values, origin),
                  role_map=MappingProxyType(_role_map(values, origin)), source=file_path, unknown_env=unknown_env,
                  **given)


def check_sw_params(params: Mapping[str, Any], where: str = "sw_ranking") -> dict:
    """A ``[sw_ranking]`` table (``preset`` and/or ``base``, ``scale``, ``normalize``, and
    ``text_weight``) -> the router's keyword arguments, validated; explicit keys override the preset's.
    Used by the config and by ``simulate-votes --sw-params``, so both accept and reject the same things."""
    for key in params:
        if key not in _TABLES["sw_ranking"]:
            raise _unknown(f"sw_ranking.{key}", _TABLES["sw_ranking"], where)
    preset = params.get("preset", SW_DEFAULT_PRESET)
    if preset not in SW_PRESETS:
        raise ConfigError(f"sw_ranking.preset must be one of {', '.join(SW_PRESETS)}, got {preset!r} (from {where})")
    out = {**SW_PRESETS[preset], "text_weight": SW_TEXT_WEIGHT, "vote_weight": SW_VOTE_WEIGHT}
    for key in ("base", "scale", "text_weight", "vote_weight"):
        if key in params:
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"sw_ranking.{key} must be a number, got {_show(key, value)} (from {where})")
            out[key] = float(value)
    if "normalize" in params:
        out["normalize"] = params["normalize"]
    if not out["base"] > 1.0:
        raise ConfigError(f"sw_ranking.base must be above 1, got {out['base']:g} (from {where})")
    if not out["scale"] > 0.0:
        raise ConfigError(f"sw_ranking.scale must be positive, got {out['scale']:g} (from {where})")
    if not out["text_weight"] >= 0.0:
        raise ConfigError(f"sw_ranking.text_weight must be 0 or more, got {out['text_weight']:g} (from {where})")
    if not out["vote_weight"] > 0.0:
        raise ConfigError(f"sw_ranking.vote_weight must be positive, got {out['vote_weight']:g} (from {where})")
    if out["normalize"] not in SW_NORMALIZE:
        raise ConfigError(f"sw_ranking.normalize must be one of {', '.join(repr(n) for n in SW_NORMALIZE)}, "
                          f"got {_show('normalize', out['normalize'])} (from {where})")
    return out


def _endpoint(role: str, values: dict, origin: dict) -> ModelEndpoint:
    given = {k.split(".", 1)[1]: v for k, v in values.items()
             if k.startswith(role + ".")}
    fields = {f: _coerce(f"{role}.{f}", v, _ENDPOINT_KINDS[f], origin) for f, v in given.items()}
    # Fields that tune a model (max_tokens, timeout, prices...) override the embedded default; fields
    # that name a remote endpoint (base_url, model, api_key_env) replace it, and then base_url is required.
    remote = {"base_url", "model", "api_key_env"} & set(fields)
    local = fields.get("local") or (None if remote else DEFAULT_LOCAL_ROLE[role])

    def fail(msg: str, key: str | None = None) -> ConfigError:
        src = f" (from {origin.get(f'{role}.{key}', 'default')})" if key else ""
        return ConfigError(f"{role}: {msg}{src}")

    if local is not None:
        if local not in LOCAL_MODELS:
            raise fail(f"local must be one of {', '.join(sorted(LOCAL_MODELS))}, got {local!r}", "local")
        if fields.get("base_url"):
            raise fail("set either base_url (a remote endpoint) or local (an embedded model), not both", "base_url")
        fields.pop("local", None)
        spec = replace(LOCAL_MODELS[local], **fields)
    else:
        if not fields.get("base_url"):
            raise fail("base_url is required (an OpenAI-compatible URL such as https://api.openai.com/v1), "
                       "or set local = \"smollm2\" | \"gemma3\"")
        if not fields.get("model"):
            raise fail("model is required (the model id the endpoint expects)")
        fields.setdefault("name", fields["model"])
        spec = ModelEndpoint(**fields)

    if spec.base_url is not None and not re.match(r"^https?://[^/\s]+", spec.base_url):
        raise fail(f"base_url must start with http:// or https://, got {spec.base_url!r}", "base_url")
    if spec.api_key_env is not None and not _ENV_NAME.match(spec.api_key_env):
        # never echo the value: people paste the key itself here
        raise fail("api_key_env must be the NAME of an environment variable holding the key "
                   "(e.g. OPENAI_API_KEY), not the key itself", "api_key_env")
    if spec.api not in APIS:
        raise fail(f"api must be 'chat' or 'completion', got {spec.api!r}", "api")
    if spec.api == "completion":
        if spec.prompt_format is None:
            spec = replace(spec, prompt_format="fewshot")
        if spec.prompt_format not in PROMPT_FORMATS:
            raise fail(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {spec.prompt_format!r}",
                       "prompt_format")
    if not spec.name or not spec.model:
        raise fail("name and model must not be empty")
    if spec.input_price < 0 or spec.output_price < 0:
        raise fail("prices must be >= 0 (USD per 1M tokens)", "input_price")
    if spec.max_tokens < 1:
        raise fail(f"max_tokens must be at least 1, got {spec.max_tokens}", "max_tokens")
    if spec.timeout <= 0:
        raise fail(f"timeout must be positive seconds, got {spec.timeout}", "timeout")
    if spec.temperature is not None and not 0.0 <= spec.temperature <= 2.0:
        raise fail(f"temperature must be between 0 and 2, got {spec.temperature}", "temperature")
    return spec


def _role_map(values: dict, origin: dict) -> dict[str, str]:
    if "role_map" not in values:
        return dict(DEFAULT_ROLE_MAP)
    out = {}
    for model, role in values["role_map"].items():
        if role not in ROLES:
            raise ConfigError(f"role_map[{model!r}] must be 'strong' or 'weak', got {role!r} (from {origin['role_map']})")
        out[str(model)] = role
    return out

