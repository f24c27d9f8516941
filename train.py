#!/usr/bin/env python3
"""Thin shim: `python train.py --task sotab-cta ...` == `aegir train --task sotab-cta ...` (same flags)."""

import functools
import sys


def main() -> None:
    import typer.main

    from aegir import cli

    train = typer.main.get_command(cli.app).commands["train"]
    # The train command alone, so that --help and usage errors read `train.py [OPTIONS]` rather than
    # `train.py train`; run through cli.main, which turns user errors into one line (exit 2).
    cli.app = functools.partial(train.main, args=sys.argv[1:], prog_name="train.py")
    cli.main()


if __name__ == "__main__":
    main()
