"""The prequential record of arena votes (was sw_ranking right before each vote?), the running arena
tally behind the ratings shown with a vote, and the app's Learning tab helpers."""

import numpy as np
import pytest

from routellm_demo.learning import prequential, winner_role
from routellm_demo.ratings import LEADERBOARD_L2 as RATING_L2
from routellm_demo.ratings import PairTally, fit_bt, model_battles, model_ratings, pair_counts, to_elo


def vote(i, winner, strong_side="a", sw_before=0.5, **meta):
    return {"id": i, "winner": winner, "strong_side": strong_side, "model_a": "m1", "model_b": "m2",
            "meta": {} if sw_before is None else {"sw_before": sw_before, **meta}}


def test_winner_role_follows_the_strong_side():
    assert winner_role(vote(1, "model_a", "a")) == "strong"
    assert winner_role(vote(1, "model_a", "b")) == "weak"
    assert winner_role(vote(1, "model_b", "a")) == "weak"
    assert winner_role(vote(1, "tie", "a")) is None
    assert winner_role(vote(1, "model_a", None)) is None


def test_prequential_scores_each_vote_by_the_score_before_it_and_leaves_ties_out():
    rows = [
        vote(1, "model_a", "a", 0.7),   # strong won, predicted strong (0.7 >= 0.5): right
        vote(2, "model_b", "a", 0.5),   # weak won, 0.5 counts as "strong" (the routing rule >=): wrong
        vote(3, "tie", "b", 0.9),       # a tie: left out
        vote(4, "model_b", "b", 0.2),   # strong (side b) won, predicted weak: wrong
        vote(5, "model_a", "b", 0.1),   # weak (side a) won, predicted weak: right
        vote(6, "model_a", "a", None),  # no recorded score: left out
        vote(7, "tie (bothbad)", "a", 0.3),
        vote(8, "model_a", "a", 0.99),  # right
    ]
    preq = prequential(list(reversed(rows)), window=2)  # any order in, oldest first out
    assert [p.battle_id for p in preq.points] == [1, 2, 4, 5, 8]
    assert [p.winner for p in preq.points] == ["strong", "weak", "strong", "weak", "strong"]
    assert [p.correct for p in preq.points] == [True, False, False, True, True]
    assert [p.rolling for p in preq.points] == [1.0, 0.5, 0.0, 0.5, 1.0]
    assert [p.cumulative for p in preq.points] == pytest.approx([1, 1 / 2, 1 / 3, 2 / 4, 3 / 5])
    # baseline: the side that won most earlier votes, strong when even: strong every time here
    assert [p.baseline_correct for p in preq.points] == [True, False, True, False, True]
    assert (preq.ties, preq.unscored) == (2, 1)
    s = preq.summary()
    assert s["accuracy"] == pytest.approx(0.6) and s["last_window"] == pytest.approx(1.0)
    assert s["first_window"] == pytest.approx(0.5) and s["baseline_accuracy"] == pytest.approx(0.6)


def test_prequential_of_the_apps_router_reads_its_own_earlier_scores():
    rows = [
        vote(1, "model_a", "a", 0.2, scores_before={"sw_ranking": 0.2, "classifier": 0.8}),  # strong won
        vote(2, "model_b", "a", 0.2, scores_before={"sw_ranking": 0.2, "classifier": 0.1}),  # weak won
        vote(3, "model_a", "a", 0.9),  # stored before the classifier's score was kept: sw_ranking only
        vote(4, "model_a", "a", 0.9, scores_before={"sw_ranking": 0.9, "classifier": None}),  # it could not score
    ]
    cls = prequential(rows, router="classifier")
    assert [p.battle_id for p in cls.points] == [1, 2] and cls.accuracy == 1.0 and cls.unscored == 2
    assert cls.summary()["router"] == "classifier"
    sw = prequential(rows)  # sw_ranking: scores_before, or the older sw_before
    assert [p.correct for p in sw.points] == [False, True, True, True] and sw.router == "sw_ranking"


def test_prequential_of_nothing_and_a_bad_window():
    preq = prequential([])
    assert preq.points == [] and preq.accuracy is None and preq.summary()["accuracy"] is None
    with pytest.raises(ValueError):
        prequential([], window=0)


def test_the_running_tally_gives_the_ratings_of_a_full_refit():
    rng = np.random.default_rng(0)
    models = ["gpt-4", "mixtral", "llama", "claude"]
    winners = ["model_a", "model_b", "tie", "tie (bothbad)"]
    rows = []
    for i in range(300):
        a, b = rng.choice(len(models), 2, replace=False)
        rows.append({"id": i + 1, "model_a": models[a], "model_b": models[b], "winner": winners[rng.integers(4)],
                     "strong_side": None})
    battles = model_battles(rows)
    full = to_elo(fit_bt(pair_counts(battles), l2=RATING_L2))  # the prior the arena shows ratings with
    expected = {p: r for p, r in zip(battles.players, full) if p in models}
    tally = PairTally()
    for start in range(0, 300, 37):  # fed in pieces, as votes arrive
        tally.add(rows[start:start + 37])
    assert tally.last_id == 300
    got = tally.ratings()
    assert got.keys() == expected.keys()
    assert all(got[m] == pytest.approx(expected[m], abs=1e-6) for m in models)
    assert model_ratings(rows) == pytest.approx(got) and model_ratings([]) == {}


def test_learning_tab_helpers_render_votes_and_router_versions():
    from routellm_demo.refresh import RouterVersion
    from routellm_demo.ui.format import learning_summary, router_versions_frame, sources_frame
    from routellm_demo.ui.plots import prequential_plot

    rows = [vote(i, "model_a" if i % 3 else "model_b", "a", 0.6) for i in range(1, 30)]
    preqs = [prequential(rows, window=10, router="classifier"), prequential(rows, window=10)]
    fig = prequential_plot(preqs)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("sw_ranking") for label in labels), labels  # classifier has no scores here
    assert prequential_plot([prequential([])]).axes
    one = prequential_plot([prequential(rows[:1], window=10)]).axes[0]  # one vote: whole-number axis, room to grow
    assert one.get_xlim() == (0, 10.5) and all(t == int(t) for t in one.get_xticks())

    class FakeRefresher:
        every, rounds, last_error = 50, 2, "ValueError: <b>boom</b>"

        def votes_until_refit(self):
            return 7

    text = learning_summary(preqs, 31, FakeRefresher())
    assert "**classifier**: none of the 31 arena votes scored yet" in text
    assert "no arena votes yet" in learning_summary([prequential([])], 0, FakeRefresher())
    assert "**sw_ranking**: **29** of 31 arena votes" in text and "next in 7" in text and "<b>" not in text
    frame = router_versions_frame([RouterVersion("mf", 3, 1200, "2025-01-01T10:00:00.000+00:00", 12.5, "refit"),
                                   RouterVersion("sw_ranking", 0, 1300, None, None, "online")])
    assert frame.values.tolist()[0][:3] == ["mf", 3, 1200] and frame.values.tolist()[1][3] == "every vote (online)"
    assert sources_frame({"import:mmlu": 10, "arena-vote": 3}).values.tolist()[0] == ["arena-vote", 3]
