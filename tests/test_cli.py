"""The CLI end to end, in-process (``main([...])``) and as a real subprocess for stdin and exit codes."""

import json
import subprocess
import sys

import pytest

from routellm_demo.cli import main
from routellm_demo.store import Store
from conftest import REPO

STRONG_M, WEAK_M = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def battle(prompt, winner):
    return {"prompt": prompt, "model_a": STRONG_M, "model_b": WEAK_M, "winner": winner, "strong_side": "a",
            "source": "test", "uid": "t:" + prompt}


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "cli.db"
    with Store(path) as s:
        s.add_battles(
            [battle(f"Prove the theorem number {i} about prime numbers and integrals", "model_a") for i in range(8)]
            + [battle(f"Say hello to my friend number {i}", "tie") for i in range(8)]
            + [battle(f"What colour is the sky on day {i}?", "model_b") for i in range(4)]
        )
    return path


def run(db, *args):
    return main(["--db", str(db), *args])


def test_route_json_gives_score_threshold_model_and_top_battles(db, capsys):
    assert run(db, "route", "Prove that there are infinitely many primes", "--router", "sw_ranking",
               "--threshold", "0.5", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["router"] == "sw_ranking" and out["threshold"] == 0.5
    assert 0.0 <= out["score"] <= 1.0
    assert out["role"] in ("strong", "weak") and out["model"]
    assert len(out["explanation"]) == 5
    assert "prime" in out["explanation"][0]["prompt"]  # the nearest battle is about primes


def test_route_math_scores_higher_than_smalltalk(db, capsys):
    scores = {}
    for prompt in ("Prove a theorem about prime numbers", "Say hello to my friend"):
        run(db, "route", prompt, "--router", "sw_ranking", "--json")
        scores[prompt] = json.loads(capsys.readouterr().out)["score"]
    assert scores["Prove a theorem about prime numbers"] > scores["Say hello to my friend"]


@pytest.mark.parametrize("args, message", [
    (["route", "   ", "--router", "elo"], "empty"),
    (["route", "hi", "--router", "elo", "--threshold", "1.5"], "outside [0, 1]"),
    (["route", "hi", "--router", "elo", "--threshold", "nan"], "outside [0, 1]"),
    (["calibrate", "--strong-pct", "50", "--router", "elo", "--prompts", "/no/such/file.txt"], "not a file"),
])
def test_bad_input_exits_2_with_one_line(db, capsys, args, message):
    assert run(db, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_unknown_router_exits_2(db, capsys):
    with pytest.raises(SystemExit) as e:
        run(db, "route", "hi", "--router", "bert")
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_foreign_csv_exits_2_and_keeps_what_was_stored(db, tmp_path, capsys):
    foreign = tmp_path / "evals"
    (foreign / "gsm8k").mkdir(parents=True)
    (foreign / "gsm8k" / "gsm8k_responses.csv").write_text("name,price\nwidget,3\n")
    (foreign / "gsm8k" / "contaminated_prompts.jsonl").write_text("")
    before = Store(db).count_battles()
    assert run(db, "import", "routellm", str(foreign), "--benchmarks", "gsm8k", "--quiet") == 2
    assert "gsm8k_responses.csv" in capsys.readouterr().err
    assert Store(db).count_battles() == before


def test_read_only_database_exits_2_and_keeps_its_rows(db, tmp_path, capsys):
    csv = tmp_path / "arena.csv"
    csv.write_text("id,model_a,model_b,prompt,winner_model_a,winner_model_b,winner_tie\n"
                   '1,x,y,"[""hi""]",1,0,0\n')
    before = Store(db).count_battles()
    db.chmod(0o444)
    try:
        code = run(db, "import", "arena", str(csv), "--quiet")
    finally:
        db.chmod(0o644)
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only" in err
    assert Store(db).count_battles() == before


@pytest.mark.slow  # waits out the store's 5 s busy timeout
def test_locked_database_exits_2(db, tmp_path, capsys):
    import sqlite3

    csv = tmp_path / "arena.csv"
    csv.write_text("id,model_a,model_b,prompt,winner_model_a,winner_model_b,winner_tie\n"
                   '1,x,y,"[""hi""]",1,0,0\n')
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = run(db, "import", "arena", str(csv), "--quiet")
    finally:
        holder.rollback()
        holder.close()
    assert code == 2
    assert "locked" in capsys.readouterr().err


def test_calibrate_reaches_the_target_share(db, capsys):
    assert run(db, "calibrate", "--strong-pct", "40", "--router", "sw_ranking", "--prompts", "battles", "--quiet") == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["strong_pct_realised"] - 40) <= 10
    assert out["model"].startswith("router-sw_ranking-")


def test_ratings_prints_the_two_models(db, capsys):
    assert run(db, "ratings", "--json", "--bootstrap", "20") == 0
    board = json.loads(capsys.readouterr().out)
    assert {p["player"] for p in board} == {STRONG_M, WEAK_M}
    top = board[0]
    assert top["player"] == STRONG_M and top["ci_low"] <= top["rating"] <= top["ci_high"]


def test_ratings_are_the_apps_leaderboard_ratings(db, capsys):
    """One rule for a shown rating: the CLI and the app's leaderboard fit the same data with the same prior."""
    from routellm_demo.ratings import model_battles
    from routellm_demo.ratings import leaderboard

    assert run(db, "ratings", "--json", "--bootstrap", "20") == 0
    cli = {p["player"]: p["rating"] for p in json.loads(capsys.readouterr().out)}
    with Store(db) as s:
        rows = s.battles()
    from routellm_demo.ratings import LEADERBOARD_L2 as RATING_L2  # the prior the app's Leaderboard tab uses

    app = {p["player"]: p["rating"] for p in leaderboard(model_battles(rows), l2=RATING_L2, n_boot=20)}
    assert cli == pytest.approx(app, abs=0.05)


def test_invalid_utf8_on_stdin_is_a_clear_error(db):
    proc = subprocess.run([sys.executable, "-m", "routellm_demo", "--db", str(db), "route", "-", "--router", "elo"],
                          input=b"caf\xe9 \xff", capture_output=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert b"not valid UTF-8" in proc.stderr
    assert proc.stderr.decode().count("\n") == 1


def test_a_1mb_prompt_is_a_clear_error_not_a_crash(db, capsys):
    huge = "Prove this theorem about prime numbers. " * 27000  # ~1 MB
    assert len(huge.encode()) > 1_000_000
    assert run(db, "route", huge, "--router", "sw_ranking", "--json", "--top", "0") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "limit" in err
