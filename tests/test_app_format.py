"""The app's pure formatting helpers (no server, no browser)."""

import app


def row(player, n, low=900.0, high=1100.0):
    return {"player": player, "rating": 1000.0, "ci_low": low, "ci_high": high, "n_battles": n,
            "wins": 0, "losses": 0, "ties": n}


def test_leaderboard_shows_no_interval_for_a_handful_of_battles():
    frame = app.leaderboard_frame({"rows": [row("big", app.MIN_CI_BATTLES), row("tiny", 1, 1340, 1340)]})
    assert list(frame["95% CI"]) == ["900 – 1100", f"too few battles (< {app.MIN_CI_BATTLES})"]
