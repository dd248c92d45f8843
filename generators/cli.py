"""`inferwatch`: one command, a subcommand per job.

Subcommand modules expose `register(subparsers)`; each registered parser sets `func(args) -> int`.
Errors the user can fix print one line to stderr and exit 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .config import ConfigError, load_config

# Modules that add subcommands, in --help order.
COMMAND_MODULES = ["generators.cli", "generators.docs", "diagnose.cli", "diagnose.serve", "diagnose.demo"]

EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="write rules, scrape objects, routing and dashboards",
        description="Render every inferwatch artifact for a config into one folder (replaced as a whole). "
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
    from .config import to_plain
    from .rules import dump_yaml
    print(dump_yaml(to_plain(load_config(args.config))), end="")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import drift, render, write_tree
    cfg = load_config(args.config)
    files = render(cfg)
    if args.check:
        stale = drift(files, args.output)
        for rel in stale:
            print(f"stale: {args.output / rel}")
        print(f"{len(files)} files, {len(stale)} differ from {args.output}", file=sys.stderr)
        return EXIT_DRIFT if stale else EXIT_OK
    write_tree(files, args.output)
    print(f"wrote {len(files)} files to {args.output}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch",
        description="Alerting and diagnosis for LLM inference (vLLM, SGLang) on Kubernetes with Prometheus.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
