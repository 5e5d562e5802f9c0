"""Command line: ``python -m routellm_demo <command>`` (also the ``routellm-demo`` script).

Every command goes through the same library calls as the app and the server. A bad input ends with
exit code 2 and one line on stderr that says what to do; nothing stored is lost.

Past 500 lines because each command's arguments and its few lines of printing live here, one short
function per command over the library; splitting them across modules would scatter the one place a
user reads to learn the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from routellm_demo.errors import UserError

EXIT_USAGE = 2


class CLIError(UserError):
    """A bad command line input: printed as one line, exit code 2."""


def _read_prompt(arg: str) -> str:
    """The prompt argument, or stdin for "-"; invalid UTF-8 is a clear error, not a traceback."""
    if arg == "-":
        raw = sys.stdin.buffer.read()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CLIError(f"the prompt on stdin is not valid UTF-8 (byte {e.start}); re-encode it as UTF-8") from None
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        raise CLIError("the prompt is not valid UTF-8; re-encode it as UTF-8") from None
    return arg


def _config(args):
    from routellm_demo.config import load_config

    config = load_config(args.config)
    if getattr(args, "db", None):
        from dataclasses import replace

        from routellm_demo.config import is_database_url

        config = replace(config, db_path=args.db if is_database_url(args.db) else Path(args.db))
    return config


def _runtime(args):
    from routellm_demo.runtime import build_runtime

    return build_runtime(_config(args))


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.1f}"
    return "" if v is None else str(v)


# --- commands ---------------------------------------------------------------------------------


def cmd_import(args) -> int:
    from routellm_demo import importers
    from routellm_demo.store import open_store

    store = open_store(_config(args).db_path)
    try:
        start = time.perf_counter()
        if args.kind == "routellm":
            data_dir = Path(args.path)
            if not data_dir.is_dir():
                raise CLIError(f"{data_dir} is not a directory; give RouteLLM's evals folder (with mmlu/, gsm8k/, mt_bench/)")
            result = importers.import_routellm(store, data_dir, benchmarks=args.benchmarks, progress=not args.quiet)
        else:
            path = Path(args.path)
            if not path.is_file():
                raise CLIError(f"{path} is not a file; give a CSV, JSON, JSONL or Parquet file in Chatbot Arena's format")
            result = importers.import_arena(store, path, contaminated=args.contaminated, progress=not args.quiet)
        seconds = time.perf_counter() - start
        print(json.dumps({"imported": result, "seconds": round(seconds, 2), "battles": store.count_battles()}, indent=2))
    finally:
        store.close()
    return 0


def cmd_download(args) -> int:
    from routellm_demo import importers

    dest = Path(args.dest)
    if args.kind == "routellm":
        importers.download_routellm(dest)
    else:
        importers.download_arena(dest)
    print(f"downloaded to {dest}")
    return 0


def cmd_embed(args) -> int:
    rt = _runtime(args)
    try:
        rows = rt.store.battles()
        prompts = [r["prompt"] for r in rows]
        start = time.perf_counter()
        rt.embedder.embed(prompts, progress=not args.quiet)
        seconds = time.perf_counter() - start
        unique = len(set(prompts))
        print(json.dumps({"prompts": len(prompts), "unique": unique, "seconds": round(seconds, 2),
                          "per_second": round(unique / seconds, 1) if seconds else None}))
    finally:
        rt.close()
    return 0


def cmd_ratings(args) -> int:
    from routellm_demo.battles import Battles
    from routellm_demo.ratings import leaderboard
    from routellm_demo.store import open_store

    store = open_store(_config(args).db_path)
    try:
        rows = store.battles(source=args.source) if args.source else store.battles()
    finally:
        store.close()
    if not rows:
        raise CLIError("the store holds no battles; import some first: python -m routellm_demo import routellm DIR")
    if not args.roles:
        rows = [{**r, "strong_side": None} for r in rows]  # rate the models themselves
    board = [p for p in leaderboard(Battles.from_records(rows), n_boot=args.bootstrap) if p["n_battles"] > 0]
    if args.json:
        print(json.dumps(board, indent=2))
    else:
        _print_table(board, ["player", "rating", "ci_low", "ci_high", "n_battles", "wins", "losses", "ties"])
    return 0


def cmd_train(args) -> int:
    from routellm_demo.routers.registry import CHECKPOINTED
    from routellm_demo.trainer import train_and_save

    config = _config(args)
    rt = _runtime(args)
    try:
        names = list(CHECKPOINTED) if args.router == "all" else [args.router]
        out = Path(args.out) if args.out else config.checkpoint_dir
        for name in names:
            report = train_and_save(rt, name, out_dir=out, sources=args.sources,
                                    command="python -m routellm_demo " + " ".join(sys.argv[1:]))
            print(json.dumps(report, indent=2))
    finally:
        rt.close()
    return 0


def cmd_route(args) -> int:
    prompt = _read_prompt(args.prompt)
    rt = _runtime(args)
    try:
        decision = rt.controller.decide(prompt, args.router, args.threshold, explain=args.top)
        explanation = decision.explanation
        if explanation:
            for e in explanation:
                b = rt.store.battle(e["battle_id"]) if e.get("battle_id", -1) >= 0 else None
                if b:
                    e["prompt"] = b["prompt"][:200]
                    e["source"] = b["source"]
                    e["winner"] = b["winner"]
    finally:
        rt.close()
    d = decision.to_dict()
    if args.json:
        print(json.dumps(d, indent=2, default=float))
    else:
        arrow = ">=" if decision.role == "strong" else "<"
        print(f"router {d['router']}: score {d['score']:.4f} {arrow} threshold {d['threshold']:.4g} -> "
              f"{decision.role} model ({decision.model}); routing {d['routing_ms']:.1f} ms")
        for i, e in enumerate(explanation, 1):
            print(f"  {i}. sim {e.get('similarity', 0):.3f} weight {e.get('weight', 0):.1f} "
                  f"{e.get('winner', '')}: {e.get('prompt', '')[:90]!r}")
    return 0


def cmd_calibrate(args) -> int:
    from routellm_demo.calibration import strong_share, threshold_for_strong_share

    prompts = args.prompts if args.prompts in ("auto", "logged", "battles") else _read_prompt_file(Path(args.prompts))
    rt = _runtime(args)
    try:
        args.router = args.router or rt.config.router
        scores, what = rt.controller.calibration_scores(args.router, prompts, sample=args.sample)
        if not scores:
            raise CLIError(f"no prompts to calibrate on ({what}); use --prompts battles or a prompt file")
        threshold = threshold_for_strong_share(scores, args.strong_pct / 100.0)
    finally:
        rt.close()
    print(json.dumps({"router": args.router, "strong_pct_target": args.strong_pct, "threshold": threshold,
                      "strong_pct_realised": round(100 * strong_share(scores, threshold), 2), "over": what,
                      "model": f"router-{args.router}-{threshold:.5g}"}, indent=2))
    return 0


def _read_prompt_file(path: Path) -> list[str]:
    """Prompts from a text file (one per line), JSONL (a "prompt" field) or CSV (a "prompt" column)."""
    if not path.is_file():
        raise CLIError(f"{path} is not a file; give --prompts logged, battles, or a prompt file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not valid UTF-8") from None
    if path.suffix == ".jsonl":
        try:
            return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError):
            raise CLIError(f"{path}: every line must be a JSON object with a \"prompt\" field") from None
    if path.suffix == ".csv":
        import csv
        import io

        reader = csv.DictReader(io.StringIO(text))
        if "prompt" not in (reader.fieldnames or []):
            raise CLIError(f"{path}: no \"prompt\" column")
        return [r["prompt"] for r in reader if r["prompt"].strip()]
    return [line for line in text.splitlines() if line.strip()]


class _StageProgress:
    """``progress(done, total, stage)`` printed to stderr: one rewritten line on a terminal, else a
    line per 10% (a log stays short)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.shown: tuple[str, int] = ("", -1)

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self.quiet or total <= 0:
            return
        tenth = 10 * done // total
        if self.tty:
            print(f"\r{stage}: {done:,}/{total:,} prompts", end="\n" if done >= total else "", file=sys.stderr,
                  flush=True)
        elif stage != self.shown[0] or tenth > self.shown[1]:
            print(f"{stage}: {done:,}/{total:,} prompts", file=sys.stderr, flush=True)
            self.shown = (stage, tenth)


def cmd_whatif(args) -> int:
    """What-if on your own traffic: a prompt file scored by a router, priced, with quality estimated
    from a benchmark's held-out curve (routellm_demo/whatif.py does the work)."""
    from routellm_demo import whatif

    if not 0 < args.step <= 100:
        raise CLIError(f"--step {args.step:g} must be above 0 and at most 100 (percent of strong calls)")
    config = _config(args)
    if args.file == "-":
        if not args.format:
            raise CLIError("reading prompts from stdin needs --format txt, jsonl or csv")
        source = sys.stdin.buffer.read(whatif.WHATIF_MAX_BYTES + 1)
    else:
        source = Path(args.file)
        if not source.is_file():
            raise CLIError(f"{source} is not a file; give a .txt, .jsonl or .csv file of prompts")
    # The file is checked before anything else is opened: a bad one changes nothing.
    prompts = whatif.read_prompts(source, name=None if args.file == "-" else source.name, fmt=args.format,
                                  max_chars=config.max_prompt_chars)
    rt = _runtime(args)
    try:
        result = whatif.what_if(
            rt, prompts, router=args.router, strong_price=args.strong_price, weak_price=args.weak_price,
            strong_output_price=args.strong_output_price, weak_output_price=args.weak_output_price,
            answer_tokens=args.answer_tokens, benchmark=args.benchmark, thresholds=args.thresholds,
            progress=_StageProgress(args.quiet),
        )
    finally:
        rt.close()
    if args.out:
        result.write_csv(args.out)
    if args.plot:
        result.write_plot(args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_whatif(result, args)
    return 0


def _print_whatif(result, args) -> None:
    p = result.prices.to_dict()
    s = result.score_summary()
    print(f"what-if: {result.n_prompts:,} prompts from {result.file_name}, router {result.router}")
    print(f"prices (USD per 1M tokens): strong {p['strong_input']:g} in / {p['strong_output']:g} out, weak "
          f"{p['weak_input']:g} in / {p['weak_output']:g} out; answers assumed {result.answer_tokens:,} tokens; "
          f"prompts ~{result.prompt_tokens.mean():.0f} tokens on average (estimated)")
    print(f"always strong: ${result.always_strong_per_1k:.4g} per 1,000 requests; always weak: "
          f"${result.always_weak_per_1k:.4g}")
    print(f"scores: min {s['min']:.3f}  p10 {s['p10']:.3f}  p25 {s['p25']:.3f}  median {s['median']:.3f}  "
          f"p75 {s['p75']:.3f}  p90 {s['p90']:.3f}  max {s['max']:.3f}  (mean {s['mean']:.3f}, "
          f"{s['distinct']:,} distinct)")
    hist = result.histogram(10)
    top = max(hist["counts"]) or 1
    for lo, hi, n in zip(hist["edges"], hist["edges"][1:], hist["counts"]):
        print(f"  {lo:.1f}-{hi:.1f}  {'#' * round(40 * n / top):<40}  {n:,}")
    print()
    rows = ([result.row_at(t) for t in args.thresholds] if args.thresholds else result.by_share(args.step))
    table = [{"target %": r.get("target_pct"), "threshold": r["threshold"], "strong %": round(r["strong_pct"], 1),
              "$ per 1k requests": round(r["cost_per_1k"], 4),
              "saved %": None if r["savings_pct"] is None else round(r["savings_pct"], 1),
              "est. quality*": None if r["est_quality"] is None else round(r["est_quality"], 3)} for r in rows]
    columns = [*([] if args.thresholds else ["target %"]), "threshold", "strong %", "$ per 1k requests", "saved %",
               "est. quality*"]
    _print_table(table, columns)
    q = result.quality
    if q is not None:
        from routellm_demo.whatif import QUALITY_UNITS

        ends = (f": strong alone {q.q_strong:.3f}, weak alone {q.q_weak:.3f}"
                if q.q_strong is not None and q.q_weak is not None else "")
        print(f"* {q.label} ({q.router}'s curve at the same share of strong calls; {QUALITY_UNITS[q.benchmark]}{ends})")
    else:
        print("* no quality estimate")
    for note in result.notes:
        print(f"note: {note}")
    if args.out:
        print(f"wrote per-prompt scores to {args.out}")
    if args.plot:
        print(f"wrote the plot to {args.plot}")


def cmd_savings(args) -> int:
    from routellm_demo.store import open_store

    store = open_store(_config(args).db_path)
    try:
        print(json.dumps(store.savings(args.session), indent=2))
    finally:
        store.close()
    return 0


def cmd_chat(args) -> int:
    """One routed answer, streamed to stdout (the CLI face of the controller)."""
    prompt = _read_prompt(args.prompt)
    rt = _runtime(args)
    try:
        response = rt.controller.respond(prompt, router=args.router, threshold=args.threshold, source="cli",
                                         max_tokens=args.max_tokens)
        d = response.decision
        print(f"[{d.router} score {d.score:.3f} vs {d.threshold:g} -> {d.role}: {d.model}]", file=sys.stderr)
        for piece in response:
            print(piece, end="", flush=True)
        a = response.answer()
        print()
        if a.is_fallback:  # the operator's detail: which model failed and why (a visitor sees one sentence)
            cause = (a.fallback_error or "").removeprefix(f"{a.fallback_from}: ")
            print(f"[fallback: the {d.role} model {a.fallback_from} failed ({a.fallback_kind}: {cause}); "
                  f"the {a.role} model {a.model} answered; not counted as a routing saving]", file=sys.stderr)
            print(f"[{a.model}: {a.prompt_tokens}+{a.completion_tokens} tokens, ${a.cost:.8f}; fallback, "
                  f"not a saving: ${a.fallback_cost_difference:.8f} under strong]", file=sys.stderr)
        else:
            print(f"[{a.model}: {a.prompt_tokens}+{a.completion_tokens} tokens, ${a.cost:.8f}, "
                  f"saved ${a.saved:.8f} vs strong]", file=sys.stderr)
    finally:
        rt.close()
    return 0


def cmd_serve(args) -> int:
    """The OpenAI-compatible router server (RouteLLM's openai_server, on our routers)."""
    import logging

    from routellm_demo.seed import start_update
    from routellm_demo.server import serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("routellm_demo.seed").setLevel(logging.INFO)  # what the first start loaded and fetched
    config = _config(args)
    rt = _runtime(args)
    try:
        start_update(rt)  # a seeded store: RouteLLM's full public set, in the background when online
        rt.follow_store()  # battles written or deleted by the app (or a replica) reach these routers too
        token = config.api_token()
        host = args.host or config.host
        port = args.port or config.port
        print(f"routellm_demo server on http://{host}:{port}/v1 (auth: {'bearer token' if token else 'none'}); "
              f"models: router-<router>-<threshold>, {config.strong.name!r}, {config.weak.name!r}", file=sys.stderr)
        serve(rt, host=host, port=port, api_token=token)
    finally:
        rt.close()
    return 0


def cmd_seed(args) -> int:
    """Build the shipped seed from RouteLLM's evals folder (the app loads it into an empty store)."""
    from routellm_demo import seed

    data_dir = Path(args.source)
    if not (data_dir / "mmlu").is_dir():
        raise CLIError(f"{data_dir} is not RouteLLM's evals folder (with mmlu/, gsm8k/, mt_bench/)")
    start = time.perf_counter()
    manifest = seed.build_seed(data_dir, Path(args.out) if args.out else seed.SEED_DIR, progress=not args.quiet)
    out = Path(args.out) if args.out else seed.SEED_DIR
    sizes = {f: (out / f).stat().st_size for f in (seed.BATTLES_FILE, seed.EMBEDDINGS_FILE, seed.MANIFEST_FILE)}
    print(json.dumps({"out": str(out), "battles": manifest["battles"], "by_source": manifest["by_source"],
                      "prompts": manifest["prompts"], "bytes": sizes, "seconds": round(time.perf_counter() - start, 1)},
                     indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from routellm_demo.routers import ROUTER_NAMES
    from routellm_demo.routers.registry import CHECKPOINTED

    p = argparse.ArgumentParser(prog="routellm-demo", description="An open LLM router: import preference data, "
                                "train routers, route prompts, answer through the strong or weak model.")
    p.add_argument("--config", help="TOML config file (default: routellm_demo.toml if present)")
    p.add_argument("--db", help="store: a SQLite path or a postgresql:// URL (overrides the config)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import", help="import preference data into the store (idempotent)")
    s.add_argument("kind", choices=["routellm", "arena"], help="routellm: RouteLLM's evals folder; arena: a Chatbot Arena file")
    s.add_argument("path")
    s.add_argument("--benchmarks", nargs="+", default=["mmlu", "gsm8k", "mt-bench"], choices=["mmlu", "gsm8k", "mt-bench"])
    s.add_argument("--contaminated", nargs="+", metavar="PATH",
                   help="arena only: RouteLLM contamination lists (files or its evals folder); those prompts are skipped")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("download", help="download the public data (needs internet)")
    s.add_argument("kind", choices=["routellm", "arena"])
    s.add_argument("dest")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("embed", help="embed every stored battle prompt into the cache")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("ratings", help="Bradley-Terry (arena Elo) ratings with 95%% CIs")
    s.add_argument("--source", help="only battles of this source")
    s.add_argument("--roles", action="store_true", help="rate the strong/weak roles instead of the models")
    s.add_argument("--bootstrap", type=int, default=200, help="bootstrap rounds for the CIs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ratings)

    s = sub.add_parser("train", help=f"train {' / '.join(CHECKPOINTED)} on the store and save checkpoints with model cards")
    s.add_argument("--router", choices=[*CHECKPOINTED, "all"], default="all")
    s.add_argument("--sources", nargs="+", help="only battles of these sources")
    s.add_argument("--out", help="checkpoint folder (default: the config's checkpoint_dir)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("route", help="score a prompt and say which model would answer")
    s.add_argument("prompt", help='the prompt, or "-" to read it from stdin')
    s.add_argument("--router", choices=ROUTER_NAMES)
    s.add_argument("--threshold", type=float)
    s.add_argument("--top", type=int, default=5, help="similar past battles to show (sw_ranking)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_route)

    s = sub.add_parser("calibrate", help="the threshold that sends a given share of prompts to the strong model")
    s.add_argument("--strong-pct", type=float, required=True, help="target share of strong calls, in percent")
    s.add_argument("--router", choices=ROUTER_NAMES, help="default: the configured router")
    s.add_argument("--prompts", default="auto",
                   help='"logged" (routing log), "battles" (stored prompts), "auto" (logged if enough, else battles) '
                        'or a prompt file (.txt lines, .jsonl or .csv with a "prompt" field)')
    s.add_argument("--sample", type=int, default=2000, help="stored battle prompts to score (seeded sample)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("chat", help="answer one prompt through the router (streamed)")
    s.add_argument("prompt", help='the prompt, or "-" for stdin')
    s.add_argument("--router", choices=ROUTER_NAMES)
    s.add_argument("--threshold", type=float)
    s.add_argument("--max-tokens", type=int, default=256)
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("serve", help="OpenAI-compatible router server (set ROUTELLM_DEMO_API_TOKEN to require a bearer token)")
    s.add_argument("--host", help="default: the config's server.host (127.0.0.1)")
    s.add_argument("--port", type=int, help="default: the config's server.port (6060, as RouteLLM)")
    s.set_defaults(func=cmd_serve)

    from routellm_demo.evals.command import register as register_eval

    register_eval(sub)

    from routellm_demo.replay import register as register_replay

    register_replay(sub)

    s = sub.add_parser("seed", help="the seed of gold-labelled battles an empty store gets at start")
    seed_sub = s.add_subparsers(dest="seed_command", required=True)
    b = seed_sub.add_parser("build", help="write data/seed/ from RouteLLM's evals folder (embeds every prompt)")
    b.add_argument("--from", dest="source", required=True, help="RouteLLM's evals folder (mmlu/, gsm8k/, mt_bench/)")
    b.add_argument("--out", help="output folder (default: data/seed, where the app reads it)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_seed)

    from routellm_demo import whatif

    s = sub.add_parser("whatif", help="what routing your own prompt file would cost and keep (nothing is stored)",
                       description="Score a file of prompts with a router and project, per threshold, the share of "
                       "strong calls, the cost per 1,000 requests and the saving against always-strong, with the "
                       "quality estimated from a benchmark's held-out evaluation at the same share of strong calls. "
                       "The prompts are not written to the store.")
    s.add_argument("file", help='a .txt (one prompt per line), .jsonl ("prompt" field) or .csv ("prompt" column) '
                   'file, or "-" for stdin with --format')
    s.add_argument("--format", choices=whatif.FORMATS, help="the file's format (default: from its suffix)")
    s.add_argument("--router", choices=ROUTER_NAMES, help="default: the configured router")
    s.add_argument("--benchmark", choices=whatif.BENCHMARKS, default="mmlu",
                   help="whose held-out quality curve the estimate is read from (default mmlu)")
    s.add_argument("--strong-price", type=float, default=whatif.DEFAULT_STRONG_PRICE,
                   help="strong model, USD per 1M tokens (input; output too unless --strong-output-price)")
    s.add_argument("--weak-price", type=float, default=whatif.DEFAULT_WEAK_PRICE,
                   help="weak model, USD per 1M tokens (input; output too unless --weak-output-price)")
    s.add_argument("--strong-output-price", type=float, help="strong model's output price, if it differs")
    s.add_argument("--weak-output-price", type=float, help="weak model's output price, if it differs")
    s.add_argument("--answer-tokens", type=int, default=whatif.DEFAULT_ANSWER_TOKENS,
                   help=f"assumed answer length in tokens (default {whatif.DEFAULT_ANSWER_TOKENS})")
    s.add_argument("--thresholds", type=float, nargs="+", metavar="T",
                   help="print rows at these thresholds (default: at each --step %% of strong calls)")
    s.add_argument("--step", type=float, default=10, help="strong-share step of the printed table, in percent")
    s.add_argument("--out", help="write the per-prompt scores (CSV) here")
    s.add_argument("--plot", help="write a PNG of the score histogram and the saving/quality curves here")
    s.add_argument("--json", action="store_true", help="print the full result as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=cmd_whatif)

    s = sub.add_parser("savings", help="running totals from the routing log")
    s.add_argument("--session")
    s.set_defaults(func=cmd_savings)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "strong_pct", None) is not None and not 0 <= args.strong_pct <= 100:
        parser.exit(EXIT_USAGE, f"routellm-demo: --strong-pct {args.strong_pct:g} is outside [0, 100]\n")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except UserError as e:  # one line that says what to change; a traceback only for real bugs
        print(f"routellm-demo: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
