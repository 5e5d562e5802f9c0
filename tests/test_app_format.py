"""The app's pure formatting helpers (no server, no browser), and its entry point."""

import runpy

from conftest import REPO
from routellm_demo.ui import format as fmt


def row(player, n, low=900.0, high=1100.0):
    return {"player": player, "rating": 1000.0, "ci_low": low, "ci_high": high, "n_battles": n,
            "wins": 0, "losses": 0, "ties": n}


def test_leaderboard_shows_no_interval_for_a_handful_of_battles():
    frame = fmt.leaderboard_frame({"rows": [row("big", fmt.MIN_CI_BATTLES), row("tiny", 1, 1340, 1340)]})
    assert list(frame["95% CI"]) == ["900 – 1100", f"too few battles (< {fmt.MIN_CI_BATTLES})"]


def test_the_routing_card_says_when_old_turns_were_left_out():
    from routellm_demo.controller import Answer, Decision

    d = Decision("mf", 0.5, 0.7, "strong", "Strong", 12.0, "0" * 64)
    a = Answer("Hi", d, "Strong", "strong", 1900, 10, "tokenizer", 1e-4, 1e-4, 900.0, 120.0, dropped_messages=4)
    assert "The 4 oldest message(s) of this conversation were left out" in fmt.decision_card(d, a)
    assert "left out" not in fmt.decision_card(d, Answer("Hi", d, "Strong", "strong", 10, 1, "api", 0, 0, 1, None))


def test_escaped_text_reads_as_typed_in_markdown_and_stays_inert():
    """A visitor's or a router's text in a gr.Markdown shows as written (an apostrophe once showed as
    ``&#x27;``: its entity's ``#`` was escaped) and opens no tag, link or emphasis. Rendered by CommonMark
    (markdown-it, which Gradio's dependencies bring) as a stand-in for the browser's renderer."""
    from markdown_it import MarkdownIt

    typed = 'mmlu\'s "held-out" <b>bold</b> & a*b_c #1 [link](http://x) `code`'
    html = MarkdownIt("commonmark").renderInline(fmt.esc(typed))
    assert "&#" not in fmt.esc(typed)
    assert "<b>" not in html and "<a" not in html and "<em>" not in html and "<code>" not in html
    assert html.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&quot;", '"') == typed
    assert fmt.h("it's") == "it&#x27;s"  # gr.HTML reads the entity as an apostrophe


def test_app_py_is_the_spaces_entry_point():
    """A Space runs ``app.py`` (README's ``app_file``): it must still start :func:`routellm_demo.ui.main`."""
    from routellm_demo.ui import main

    assert runpy.run_path(str(REPO / "app.py"), run_name="not_main")["main"] is main
