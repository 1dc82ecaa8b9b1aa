"""``quantum-gate``: the one-shot commands operators script against, and the daemon's entry point.

Exit codes (docs/cli.md): 0 PASS; 2 blocked (FAIL or INSUFFICIENT_DATA, fail-closed; also a stream
key that does not exist); 1 could not evaluate (bad arguments or config, Redis unreachable, cutover
unknown); 3 the verdict was printed but ``--report-dir`` could not be written. Errors are one line on
stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import redis

from quantum_gate import __version__
from quantum_gate.breakdown import symbols_document, transitions_document
from quantum_gate.config import ConfigError, Settings
from quantum_gate.config_loading import load_settings
from quantum_gate.cutover import Cutover, CutoverUnavailable
from quantum_gate.cutover_sources import cutover_source
from quantum_gate.depth_markdown import diagnose_depth_text
from quantum_gate.diagnosis import diagnose_window, render_diagnosis
from quantum_gate.history import render_history
from quantum_gate.ledger import default_ledger_path
from quantum_gate.ledger_store import LedgerError, read_history
from quantum_gate.oneshot import check_document, evaluate_once, load_pair, missing_stream
from quantum_gate.redis_state import StreamMissing, StreamWrongType
from quantum_gate.report import dumps, render_table
from quantum_gate.report_files import write_report
from quantum_gate.streamids import StreamIdError
from quantum_gate.verdicts import Verdict

EXIT_PASS, EXIT_ERROR, EXIT_BLOCKED, EXIT_REPORT_FAILED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments: one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _common(parser: argparse.ArgumentParser, *, windows: bool = True) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file (see config.example.yaml)")
    parser.add_argument(
        "--redis-url",
        help="redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL (docs/redis.md; "
        "env QUANTUM_GATE_REDIS_URL)",
    )
    parser.add_argument("--stream", help="stream key (default quantum:stream:trade.intent)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--after",
        help="fixed cutover: ISO 8601 (naive = UTC), epoch s/ms, @epoch as systemd prints it, or a stream ID",
    )
    group.add_argument("--unit", help="take the cutover from this systemd unit's last start")
    _source_flags(group)
    if windows:
        parser.add_argument("--window", type=int, help="post window size in accepted events (default 2000)")
        parser.add_argument("--baseline", type=int, help="baseline size in accepted events (default 2000)")


def _source_flags(group: argparse._MutuallyExclusiveGroup) -> None:
    group.add_argument("--container", help="take the cutover from this Docker container's last start")
    group.add_argument(
        "--deployment",
        metavar="[NAMESPACE/]NAME",
        help="take the cutover from this Kubernetes Deployment's rollout (never PASS while it rolls)",
    )


def _at_least_one(text: str) -> int:
    """--top: a whole number >= 1 (0 or less would print no values at all)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text[:32]!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="quantum-gate", description="Cutover-aware quality gate for quantum trade.intent.")
    parser.add_argument("--version", action="version", version=f"quantum-gate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = commands.add_parser("check", help="evaluate the gate once; exit 0 PASS, 2 blocked, 1 error")
    _common(check)
    check.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    check.add_argument(
        "--report-dir", type=Path, help="also write quality_gate_<UTC stamp>.md and .json here"
    )
    check.add_argument("--note", help="an operator note recorded in the report")

    diagnose = commands.add_parser("diagnose", help="collapse diagnosis: exact values, ranges, variants")
    _common(diagnose)
    diagnose.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    diagnose.add_argument(
        "--top", type=_at_least_one, default=10, help="top exact values per model, text and JSON (default 10)"
    )

    cutover = commands.add_parser("cutover", help="show the cutover systemd reports (or convert --after)")
    cutover.add_argument("--config", type=Path, help="YAML settings file (see config.example.yaml)")
    group = cutover.add_mutually_exclusive_group()
    group.add_argument("--unit", help="systemd unit (default quantum-ai-engine.service)")
    group.add_argument(
        "--after",
        help="convert this value (ISO 8601, epoch s/ms, @epoch, stream ID) instead of asking systemd",
    )
    _source_flags(group)
    cutover.add_argument("--json", action="store_true", help="print one JSON object instead of the text")

    run = commands.add_parser("run", help="the daemon: tail, watch the cutover, evaluate, export metrics")
    _common(run)
    run.add_argument("--listen", help="HOST:PORT for /metrics, /gate, /healthz, / (default 127.0.0.1:9731)")
    run.add_argument("--report-dir", type=Path, help="folder for gate reports (default ./reports)")
    run.add_argument(
        "--web-config-file",
        type=Path,
        help="exporter-toolkit web configuration: TLS, basic auth, headers (docs/security.md)",
    )
    run.add_argument("--interval", type=float, help="seconds between evaluations (default 15)")
    run.add_argument(
        "--ledger", type=Path, help="SQLite file of every cutover and its verdicts (docs/ledger.md)"
    )
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least severe log level written to stderr (default info)",
    )

    history = commands.add_parser("history", help="the deployment ledger: every cutover and its verdicts")
    history.add_argument("--config", type=Path, help="YAML settings file (its ledger.path is read)")
    history.add_argument("--ledger", type=Path, help="the ledger file (default: ledger.path of the config)")
    history.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    history.add_argument(
        "--limit", type=_positive_int, default=20, help="newest N cutovers (default 20, at most 1000)"
    )

    demo = commands.add_parser("demo", help="embedded Redis + simulated engine + the real daemon")
    demo.add_argument(
        "--listen",
        default="127.0.0.1:9731",
        help="HOST:PORT for the demo's status page, /metrics and /gate (default 127.0.0.1:9731)",
    )
    demo.add_argument(
        "--speed", type=float, default=1.0, help="multiply the simulated event rate (default 1, at most 1000)"
    )
    demo.add_argument("--report-dir", type=Path, help="where the demo's reports go (default: a temp folder)")
    demo.add_argument(
        "--ledger", type=Path, help="the demo's deployment ledger file (default: in the demo's temp folder)"
    )
    demo.add_argument(
        "--engine",
        choices=["systemd", "kubernetes"],
        default="systemd",
        help="how the simulated engine is deployed: a systemd unit, or a Kubernetes Deployment rolled out",
    )
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 1000, not {text!r}")
    return int(text)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "redis.url": getattr(args, "redis_url", None),
        "redis.stream": getattr(args, "stream", None),
        "cutover.after": getattr(args, "after", None),
        "cutover.unit": getattr(args, "unit", None),
        "cutover.container": getattr(args, "container", None),
        "cutover.deployment": getattr(args, "deployment", None),
        "cutover.source": _flag_source(args),
        "windows.post": getattr(args, "window", None),
        "windows.baseline": getattr(args, "baseline", None),
        "daemon.listen": getattr(args, "listen", None),
        "daemon.report_dir": getattr(args, "report_dir", None),
        "daemon.interval_seconds": getattr(args, "interval", None),
        "http.web_config_file": getattr(args, "web_config_file", None),
        "ledger.path": getattr(args, "ledger", None),
    }
    settings = load_settings(getattr(args, "config", None), overrides=overrides)
    if _flag_source(args):  # --unit/--container/--deployment beat an `after` from the file or environment
        settings = settings.model_copy(
            update={"cutover": settings.cutover.model_copy(update={"after": None})}
        )
    return settings


def _flag_source(args: argparse.Namespace) -> str | None:
    """The source a flag names: it beats ``cutover.source`` from the file or environment."""
    for flag, source in (("unit", "systemd"), ("container", "docker"), ("deployment", "kubernetes")):
        if getattr(args, flag, None):
            return source
    return None


def resolve_cutover(settings: Settings) -> Cutover:
    """A fixed ``after`` when set, else the configured source. Raises CutoverUnavailable / StreamIdError."""
    return cutover_source(settings.cutover).query()


def require_directory(path: Path | None, what: str) -> None:
    """A report folder that exists as something else (or below a file) is refused before any work,
    in one line, instead of a traceback after the evaluation or a daemon that can never write."""
    if path is None:
        return
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                shown = path if candidate == path else f"{path} (below {candidate})"
                raise ConfigError(f"{what} {shown}: exists and is not a directory")
            return


def cmd_check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    cutover = resolve_cutover(settings)  # no report-dir check first: the verdict comes before the report
    now = time.time()
    post, pre = load_pair(settings, cutover)
    missing = missing_stream(settings, post, pre)
    if missing is not None and not args.json:
        raise missing
    result, document = check_document(settings, post, pre, cutover, now, operator_note=args.note)
    if missing is not None:  # scripts still get their one JSON object (INSUFFICIENT_DATA, saying why)
        document["reasons"] = [str(missing), *document["reasons"]]
        sys.stdout.buffer.write(dumps(document) + b"\n")
        raise missing
    if args.json:  # the verdict first: a report folder that cannot be written never loses it
        sys.stdout.buffer.write(dumps(document) + b"\n")
    else:
        print(render_table(document))
    sys.stdout.flush()
    if args.report_dir:
        try:
            path = write_report(args.report_dir, document)
        except OSError as exc:
            where = exc.filename or args.report_dir
            _fail(f"report not written: {where}: {exc.strerror or exc} (the verdict above stands)")
            return EXIT_REPORT_FAILED
        print(f"report written: {path} (and .md)", file=sys.stderr)
    return EXIT_PASS if result.verdict == Verdict.PASS else EXIT_BLOCKED


def cmd_diagnose(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    cutover = resolve_cutover(settings)
    _, post, pre = evaluate_once(settings, cutover, time.time())
    missing = missing_stream(settings, post, pre)
    if missing is not None:
        raise missing
    suspects = settings.gate.suspect_constants
    document = {
        "cutover": cutover.to_json(),
        "stream": settings.redis.stream,
        "windows": {
            "post": diagnose_window(post, suspects, args.top),
            "pre": diagnose_window(pre, suspects, args.top),
        },
    }
    document["symbols"] = symbols_document(post, pre, settings.report.top_symbols)
    document["transitions"] = transitions_document(post, pre)
    if args.json:
        sys.stdout.buffer.write(dumps(document) + b"\n")
    else:
        print(render_diagnosis(document))
        print("\n".join(diagnose_depth_text(document)))
    return EXIT_PASS


def cmd_cutover(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    cutover = resolve_cutover(settings)
    if args.json:
        sys.stdout.buffer.write(dumps(cutover.to_json()) + b"\n")
        return EXIT_PASS
    print(f"cutover    {cutover.timestamp}")
    print(f"stream ID  {cutover.stream_id}")
    if cutover.unit:
        print(f"unit       {cutover.unit} ({cutover.active_state or 'state unknown'})")
        print(f"invocation {cutover.invocation_id or 'unknown'}")
        print(f"restarts   {cutover.n_restarts if cutover.n_restarts is not None else 'unknown'}")
    if cutover.label:
        state = f" ({cutover.active_state})" if cutover.active_state else ""
        print(f"source     {cutover.label}{state}")
        print(f"identity   {cutover.identity_key}")
    if cutover.source == "docker":
        print(f"restarts   {cutover.n_restarts if cutover.n_restarts is not None else 'unknown'}")
    if cutover.rollout is not None:
        print(f"rollout    {'complete' if cutover.rollout.complete else cutover.rollout.reason()}")
    for key, value in cutover.provenance:
        print(f"{key:<10} {value}")
    return EXIT_PASS


def cmd_run(args: argparse.Namespace) -> int:
    from quantum_gate.daemon import run_daemon  # noqa: PLC0415 - one-shot commands skip the daemon's imports

    settings = settings_from_args(args)
    # Refused before the daemon logs anything, so the error is the one line on stderr (exit 1).
    require_directory(settings.daemon.report_dir, "daemon.report_dir")
    source = cutover_source(settings.cutover)
    if source.kind == "fixed":  # a bad --after is refused here; a source that is asked may recover
        source.query()
    return run_daemon(settings, log_level=args.log_level)


def cmd_history(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    path = default_ledger_path(settings.ledger.path, os.environ)
    if path is None:
        raise ConfigError("history: no ledger file given (--ledger PATH or ledger.path in --config)")
    found = read_history(path, args.limit)
    if args.json:
        document = {"ledger": str(path), "cutovers": [row.to_json() for row in found]}
        sys.stdout.buffer.write(dumps(document) + b"\n")
    else:
        print(render_history(found, time.time()))
    return EXIT_PASS


def cmd_demo(args: argparse.Namespace) -> int:
    from quantum_gate.demo import run_demo  # noqa: PLC0415 - fakeredis is loaded only for the demo

    require_directory(args.report_dir, "--report-dir")
    return run_demo(
        listen=args.listen,
        speed=args.speed,
        report_dir=args.report_dir,
        ledger=args.ledger,
        engine=args.engine,
    )


COMMANDS = {
    "check": cmd_check,
    "diagnose": cmd_diagnose,
    "cutover": cmd_cutover,
    "run": cmd_run,
    "history": cmd_history,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit per error class
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        return _fail(f"usage: {exc} (see quantum-gate --help)")
    except ConfigError as exc:
        return _fail(str(exc))
    except CutoverUnavailable as exc:
        return _fail(f"cutover: {exc.message} (pass --after to fix the cutover by hand)")
    except StreamIdError as exc:
        return _fail(f"cutover: {exc}")
    except StreamMissing as exc:  # fail-closed like any blocked gate: nothing to judge
        _fail(str(exc))
        return EXIT_BLOCKED
    except StreamWrongType as exc:
        return _fail(f"redis: {exc}")
    except LedgerError as exc:
        return _fail(exc.message)
    except redis.AuthenticationError:
        return _fail("redis: authentication failed (check the password source; it is never printed)")
    except redis.RedisError as exc:
        return _fail(f"redis: {_first_line(exc)}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _fail(message: str) -> int:
    print(f"quantum-gate: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
