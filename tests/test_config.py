"""Config: file + environment precedence, one-line validation messages, secrets kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from routellm_demo.config import (
    REPO_ROOT,
    Config,
    ConfigError,
    ModelEndpoint,
    default_db_path,
    load_config,
)

BASE_ENV = {"HOME": "/home/tester"}  # an environ with no ROUTELLM_DEMO_* at all


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routellm_demo.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_local_pair(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ=BASE_ENV)
    assert isinstance(cfg, Config)
    assert cfg.strong.local == "gemma3" and cfg.strong.base_url is None
    assert cfg.strong.api == "completion" and cfg.strong.prompt_format == "fewshot" and cfg.strong.stop
    assert cfg.weak.local == "smollm2" and cfg.weak.api == "chat"
    assert cfg.is_local_pair
    # compute-proportional prices: the 270M model costs twice the 135M one
    assert cfg.strong.input_price == pytest.approx(2 * cfg.weak.input_price, rel=0.02)
    assert (cfg.router, cfg.threshold, cfg.fallback) == ("classifier", 0.5, True)
    assert (cfg.host, cfg.port) == ("127.0.0.1", 6060)
    assert cfg.role_map["gpt-4-1106-preview"] == "strong"
    assert cfg.role_map["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "weak"
    assert cfg.checkpoint_dir == REPO_ROOT / "data" / "checkpoints"
    assert cfg.model_cache_dir == Path("/home/tester/.cache/routellm_demo")
    assert cfg.endpoint("strong") is cfg.strong


def test_file_then_env_precedence(tmp_path):
    path = write(tmp_path, """
router = "bert"
threshold = 0.3
db_path = "db/demo.db"
fallback = false

[server]
port = 7000

[strong]
name = "GPT-4o"
base_url = "https://api.openai.com/v1"
model = "gpt-4o"
api_key_env = "OPENAI_API_KEY"
input_price = 2.5
output_price = 10
""")
    cfg = load_config(path, environ=BASE_ENV)
    assert cfg.source == path.resolve()
    assert (cfg.router, cfg.threshold, cfg.fallback, cfg.port) == ("bert", 0.3, False, 7000)
    assert cfg.db_path == tmp_path / "db" / "demo.db"  # relative to the file
    assert cfg.strong.name == "GPT-4o" and cfg.strong.output_price == 10.0
    assert cfg.weak.local == "smollm2"  # unconfigured role keeps the local default

    env = dict(BASE_ENV, ROUTELLM_DEMO_THRESHOLD="0.8", ROUTELLM_DEMO_ROUTER="sw_ranking",
               ROUTELLM_DEMO_FALLBACK="yes", ROUTELLM_DEMO_DB="/tmp/x.db", ROUTELLM_DEMO_PORT="",
               ROUTELLM_DEMO_STRONG_MODEL="gpt-4o-mini", ROUTELLM_DEMO_WEAK_BASE_URL="http://127.0.0.1:11434/v1",
               ROUTELLM_DEMO_WEAK_MODEL="llama3.2:1b")
    cfg = load_config(path, environ=env)
    assert (cfg.router, cfg.threshold, cfg.fallback) == ("sw_ranking", 0.8, True)
    assert cfg.db_path == Path("/tmp/x.db")
    assert cfg.port == 7000  # an empty variable counts as unset
    assert cfg.strong.model == "gpt-4o-mini" and cfg.strong.base_url == "https://api.openai.com/v1"
    assert cfg.weak.local is None and cfg.weak.name == "llama3.2:1b" and cfg.weak.api_key_env is None


def test_config_file_from_environment(tmp_path):
    path = write(tmp_path, 'threshold = 0.25\n')
    cfg = load_config(environ=dict(BASE_ENV, ROUTELLM_DEMO_CONFIG=str(path)))
    assert cfg.threshold == 0.25
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(environ=dict(BASE_ENV, ROUTELLM_DEMO_CONFIG=str(tmp_path / "nope.toml")))


def test_local_model_with_overrides(tmp_path):
    path = write(tmp_path, '[strong]\nlocal = "smollm2"\nmax_tokens = 32\n[weak]\nlocal = "gemma3"\n')
    cfg = load_config(path, environ=BASE_ENV)
    assert cfg.strong.local == "smollm2" and cfg.strong.max_tokens == 32 and cfg.strong.api == "chat"
    assert cfg.weak.local == "gemma3" and cfg.weak.api == "completion"


def test_one_field_set_by_environment_overrides_the_embedded_default(tmp_path):
    """With no [strong] table, ROUTELLM_DEMO_STRONG_MAX_TOKENS tunes the embedded strong model; it does
    not turn it into a remote endpoint that lacks a base_url."""
    cfg = load_config(environ=dict(BASE_ENV, ROUTELLM_DEMO_STRONG_MAX_TOKENS="24", ROUTELLM_DEMO_WEAK_TIMEOUT="9"))
    assert cfg.strong.local == "gemma3" and cfg.strong.max_tokens == 24 and cfg.strong.api == "completion"
    assert cfg.weak.local == "smollm2" and cfg.weak.timeout == 9.0
    assert cfg.is_local_pair
    # naming a model without saying where it is served is still an error, not a silent local model
    with pytest.raises(ConfigError, match="strong: base_url is required"):
        load_config(environ=dict(BASE_ENV, ROUTELLM_DEMO_STRONG_MODEL="gpt-4o"))


@pytest.mark.parametrize("text, env, message", [
    ("threshold = 1.5\n", {}, r"threshold must be between 0 and 1, got 1.5 \(from routellm_demo.toml\)"),
    ("", {"ROUTELLM_DEMO_THRESHOLD": "high"}, r"threshold must be a number, got 'high' \(from ROUTELLM_DEMO_THRESHOLD\)"),
    ("", {"ROUTELLM_DEMO_FALLBACK": "maybe"}, r"fallback must be true or false"),
    ("[server]\nport = 70000\n", {}, r"server.port must be in 1..65535"),
    ("[strong]\nmodel = \"gpt-4o\"\n", {}, r"strong: base_url is required"),
    ("[weak]\nbase_url = \"http://x/v1\"\n", {}, r"weak: model is required"),
    ("[strong]\nbase_url = \"ftp://x\"\nmodel = \"m\"\n", {}, r"base_url must start with http"),
    ("[strong]\nbase_url = \"http://x/v1\"\nmodel = \"m\"\napi = \"responses\"\n", {}, r"api must be 'chat' or 'completion'"),
    ("[strong]\nlocal = \"llama70b\"\n", {}, r"strong: local must be one of gemma3, smollm2"),
    ("[strong]\nlocal = \"gemma3\"\nbase_url = \"http://x/v1\"\n", {}, r"not both"),
    ("[weak]\nbase_url = \"http://x/v1\"\nmodel = \"m\"\nmax_tokens = 0\n", {}, r"weak: max_tokens must be at least 1"),
    ("[role_map]\n\"gpt-4\" = \"best\"\n", {}, r"role_map\['gpt-4'\] must be 'strong' or 'weak'"),
    ("threshold = \n", {}, r"invalid TOML"),
    ("strong = 3\n", {}, r"'strong' must be a table"),
    ("[sw_ranking]\nbase = 1\n", {}, r"sw_ranking.base must be above 1, got 1 \(from routellm_demo.toml\)"),
    ("", {"ROUTELLM_DEMO_SW_SCALE": "0"}, r"sw_ranking.scale must be positive, got 0 \(from ROUTELLM_DEMO_SW_SCALE\)"),
    ("", {"ROUTELLM_DEMO_SW_BASE": "big"}, r"sw_ranking.base must be a number, got 'big'"),
    ("[sw_ranking]\nnormalize = \"softmax\"\n", {}, r"sw_ranking.normalize must be one of 'max', 'one', got 'softmax'"),
    ("[sw_ranking]\npreset = \"sharpest\"\n", {}, r"sw_ranking.preset must be one of sharp, routellm, smooth, monotone, got 'sharpest'"),
    ("sw_ranking = 3\n", {}, r"'sw_ranking' must be a table"),
])
def test_validation_messages(tmp_path, text, env, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, environ=dict(BASE_ENV, **env))
    assert "\n" not in str(info.value)  # one line


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, '[strong]\nbase_ulr = "http://x/v1"\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'strong.base_ulr' \(did you mean 'base_url'\?\)"):
        load_config(path, environ=BASE_ENV)
    with pytest.raises(ConfigError, match=r"unknown key 'treshold'"):
        load_config(write(tmp_path, "treshold = 0.5\n"), environ=BASE_ENV)
    with pytest.raises(ConfigError, match=r"unknown key 'limits.max_tokns'"):
        load_config(write(tmp_path, "[limits]\nmax_tokns = 5\n"), environ=BASE_ENV)


def test_unknown_env_variables_are_reported_not_fatal(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ=dict(BASE_ENV, ROUTELLM_DEMO_TRESHOLD="0.1"))
    assert cfg.unknown_env == ("ROUTELLM_DEMO_TRESHOLD",)
    assert cfg.threshold == 0.5


def test_missing_key_variable_message():
    spec = ModelEndpoint(name="GPT-4o", model="gpt-4o", base_url="https://api.openai.com/v1",
                         api_key_env="OPENAI_API_KEY")
    with pytest.raises(ConfigError, match=r"^set OPENAI_API_KEY to the API key for GPT-4o"):
        spec.api_key({})
    assert spec.api_key({"OPENAI_API_KEY": "sk-test"}) == "sk-test"
    assert ModelEndpoint(name="local", model="m").api_key({}) is None


def test_secrets_never_shown(tmp_path):
    secret = "sk-live-DO-NOT-LEAK-1234567890"
    path = write(tmp_path, '[strong]\nbase_url = "https://api.openai.com/v1"\nmodel = "gpt-4o"\n'
                           'api_key_env = "OPENAI_API_KEY"\n')
    cfg = load_config(path, environ=dict(BASE_ENV, OPENAI_API_KEY=secret))
    assert secret not in repr(cfg) and secret not in str(cfg) and secret not in repr(cfg.strong)
    assert cfg.strong.api_key(dict(OPENAI_API_KEY=secret)) == secret

    # a key pasted where the variable NAME belongs is refused without echoing it
    path = write(tmp_path, f'[strong]\nbase_url = "https://x/v1"\nmodel = "m"\napi_key_env = "{secret}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=BASE_ENV)
    assert "NAME of an environment variable" in str(info.value) and secret not in str(info.value)

    # and so is a key written into the file
    path = write(tmp_path, f'[strong]\nbase_url = "https://x/v1"\nmodel = "m"\napi_key = "{secret}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=BASE_ENV)
    assert "api_key_env" in str(info.value) and secret not in str(info.value)

    env = dict(BASE_ENV, ROUTELLM_DEMO_STRONG_BASE_URL="https://x/v1", ROUTELLM_DEMO_STRONG_MODEL="m",
               ROUTELLM_DEMO_STRONG_API_KEY_ENV=secret)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""), environ=env)
    assert secret not in str(info.value)


def test_db_path_prefers_writable_data_dir(tmp_path):
    assert default_db_path(tmp_path) == tmp_path / "routellm_demo.db"
    assert default_db_path(tmp_path / "missing") == REPO_ROOT / "data" / "routellm_demo.db"


def test_example_file_is_valid():
    """The documented example must load (its commented alternatives are for reading)."""
    cfg = load_config(REPO_ROOT / "routellm_demo.example.toml", environ=BASE_ENV)
    assert cfg.threshold == 0.5


def test_sw_ranking_weighting_from_file_env_and_presets(tmp_path):
    assert load_config(write(tmp_path, ""), environ=BASE_ENV).sw_params == {"base": 1e4, "scale": 10.0,
                                                                          "normalize": "max", "text_weight": 0.3,
                                                                          "vote_weight": 30.0}
    cfg = load_config(write(tmp_path, '[sw_ranking]\npreset = "smooth"\n'), environ=BASE_ENV)
    assert cfg.sw_params == {"base": 3.0, "scale": 10.0, "normalize": "max", "text_weight": 0.3, "vote_weight": 30.0}
    assert cfg.router_params == {"sw_ranking": cfg.sw_params}
    # explicit keys override the preset; the environment overrides the file
    path = write(tmp_path, '[sw_ranking]\npreset = "monotone"\nbase = 5\n')
    assert load_config(path, environ=BASE_ENV).sw_params == {"base": 5.0, "scale": 10.0, "normalize": "one",
                                                             "text_weight": 0.3, "vote_weight": 30.0}
    env = dict(BASE_ENV, ROUTELLM_DEMO_SW_BASE="20", ROUTELLM_DEMO_SW_NORMALIZE="max", ROUTELLM_DEMO_SW_TEXT_WEIGHT="0")
    assert load_config(path, environ=env).sw_params == {"base": 20.0, "scale": 10.0, "normalize": "max",
                                                        "text_weight": 0.0, "vote_weight": 30.0}
    with pytest.raises(ConfigError, match=r"sw_ranking.text_weight must be 0 or more, got -1"):
        load_config(write(tmp_path, "[sw_ranking]\ntext_weight = -1\n"), environ=BASE_ENV)
    with pytest.raises(ConfigError, match=r"unknown key 'sw_ranking.bse' \(did you mean 'base'\?\)"):
        load_config(write(tmp_path, "[sw_ranking]\nbse = 3\n"), environ=BASE_ENV)


def test_check_sw_params_is_what_simulate_votes_uses():
    from routellm_demo.config import check_sw_params

    assert check_sw_params({"preset": "smooth", "scale": 2}) == {"base": 3.0, "scale": 2.0, "normalize": "max",
                                                                 "text_weight": 0.3, "vote_weight": 30.0}
    assert check_sw_params({"vote_weight": 1})["vote_weight"] == 1.0
    with pytest.raises(ConfigError, match=r"sw_ranking.vote_weight must be positive, got 0"):
        check_sw_params({"vote_weight": 0})
    with pytest.raises(ConfigError, match=r"--sw-params: unknown key 'sw_ranking.top_k'"):
        check_sw_params({"top_k": 5}, "--sw-params")
    with pytest.raises(ConfigError, match=r"sw_ranking.base must be a number, got True"):
        check_sw_params({"base": True})
