"""The command line: `inferwatch` (a subcommand per job) and `diagnose` (the same as `inferwatch diagnose`).

Each pipeline owns its subcommands' arguments in a `register(subparsers)` function, imported here by
name; each registered parser sets `func(args) -> int`. The sandbox's `demo` is the one subcommand that
reaches the sandbox, and it is imported only when `demo` runs. Errors the user can fix print one line
to stderr and exit 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.config import ConfigError, load_config
from .diagnose import command as diagnose_command
from .diagnose import serve
from .generate import docs
from .generate.writer import CHECKS

EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2


def register_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="write rules, scrape objects, routing and dashboards",
        description="Render every inferwatch artifact for a config into one folder (replaced as a whole). "
                    "The folder must be new, empty, or one an earlier run wrote (it carries a "
                    ".inferwatch-generated marker); anything else is refused unless --force. "
                    "Without --config the built-in defaults are used; `rules/` in this repository holds "
                    "exactly that output.",
        epilog="examples:\n  inferwatch generate --output out/\n"
               "  inferwatch generate --config inferwatch.yaml --output deploy/inferwatch\n"
               "  inferwatch generate --check --output rules   # exit 1 if rules/ is stale",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", type=Path, help="inferwatch.yaml (every key optional)")
    p.add_argument("--output", "-o", type=Path, default=Path("rules"), help="output folder (default: rules)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the files that differ from the output folder")
    p.add_argument("--force", action="store_true",
                   help="replace the output folder even if inferwatch did not write it (DELETES what it holds)")
    p.set_defaults(func=cmd_generate)

    c = sub.add_parser(
        "config", help="validate a config and print the effective settings",
        description="Print the effective configuration as YAML: the built-in defaults, or a config file merged "
                    "over them after validation. The output is itself a valid inferwatch.yaml, so it doubles "
                    "as the configuration reference.",
        epilog="examples:\n  inferwatch config > inferwatch.yaml      # start from the defaults\n"
               "  inferwatch config --config inferwatch.yaml  # validate; exit 2 with file:line on error",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--config", "-c", type=Path, help="inferwatch.yaml to validate")
    c.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    from .core.config import to_plain
    from .core.rules import dump_yaml
    print(dump_yaml(to_plain(load_config(args.config, CHECKS))), end="")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate.writer import OutputError, drift, render, write_tree
    cfg = load_config(args.config, CHECKS)
    files = render(cfg)
    if args.check:
        stale = drift(files, args.output)
        for rel in stale:
            print(f"stale: {args.output / rel}")
        print(f"{len(files)} files, {len(stale)} differ from {args.output}", file=sys.stderr)
        return EXIT_DRIFT if stale else EXIT_OK
    try:
        write_tree(files, args.output, force=args.force)
    except OutputError as exc:
        print(f"inferwatch generate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"inferwatch generate: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {len(files)} files to {args.output}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch",
        description="Alerting and diagnosis for LLM inference (vLLM, SGLang) on Kubernetes with Prometheus.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_generate(sub)
    docs.register(sub)
    diagnose_command.register(sub)
    serve.register(sub)
    register_demo(sub)
    return parser


def register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the whole job on a bundled incident (local Prometheus, no cluster)",
        description="Start a throwaway Prometheus on 127.0.0.1 loaded with a bundled incident scenario and\n"
                    "the generated rules, list the alerts that fire at the incident time, explain the\n"
                    "incident with `diagnose`, then stop everything. Needs only the prometheus and promtool\n"
                    "binaries (`make setup`): no cluster, no network, well under a minute.\n"
                    "Progress goes to stderr; the alerts and the diagnosis go to stdout.",
        epilog="examples:\n  inferwatch demo\n  inferwatch demo --keep-running     # explore in the Prometheus UI\n"
               "  inferwatch demo --scenario vllm-kv-cache-pressure --window 10m\n\n"
               "A scenario is a bundled name (inferwatch/sandbox/scenarios/*.yaml) or a YAML path "
               "(format: inferwatch/sandbox/scenario.py).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="demo-incident",
                   help="bundled scenario name or a YAML path (default: demo-incident)")
    p.add_argument("--window", default="15m", help="diagnosis window ending at the incident time (default: 15m)")
    p.add_argument("--keep-running", action="store_true",
                   help="leave Prometheus up after the diagnosis and print its URL; Ctrl-C stops it")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .sandbox import demo  # the product never imports the sandbox; only this subcommand runs it
    return demo.command(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"inferwatch: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def diagnose_main(argv: list[str] | None = None) -> int:
    """The `diagnose` console script: `inferwatch diagnose` without the subcommand word."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # `diagnose serve ...` is `inferwatch serve ...`
        return main(argv)
    parser = argparse.ArgumentParser(prog="diagnose", description=diagnose_command.DESCRIPTION,
                                     epilog=diagnose_command.EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    diagnose_command.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error (or --help)
        return int(exc.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
