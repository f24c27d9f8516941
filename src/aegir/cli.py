"""`aegir <command>`: one CLI whose commands only parse flags and call plain typed functions.

Command modules live in `aegir.commands`; each exposes `register(app)` (root-level commands) and/or
`register_t2t(t2t_app)` (commands under `aegir t2t`). Modules are imported lazily-tolerant: a module
whose optional dependencies are missing still lets every other command work.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="aegir",
    help="Aegir: byte-level table understanding (column annotation, text -> schema -> table).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
t2t_app = typer.Typer(help="Text -> schema -> table: data, metrics, SFT, RL, VERL export.", no_args_is_help=True)
app.add_typer(t2t_app, name="t2t")

# Order only affects --help listing.
COMMAND_MODULES = (
    "aegir.commands.data",
    "aegir.commands.model",
    "aegir.commands.pretrain",
    "aegir.commands.finetune",
    "aegir.commands.diagnostics",
    "aegir.commands.annotate",
    "aegir.commands.demo",
    "aegir.commands.t2t_data",
    "aegir.commands.t2t_llm",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # module not written yet
                continue
            raise
        if hasattr(mod, "register"):
            mod.register(app)
        if hasattr(mod, "register_t2t"):
            mod.register_t2t(t2t_app)


_register_all()


def main() -> None:
    from aegir.tables import TableError

    user_errors: tuple[type[BaseException], ...] = (TableError,)
    try:  # checkpoint errors are user mistakes too (wrong file, corrupt file); torch may be absent
        from aegir.checkpoint import CheckpointError

        user_errors += (CheckpointError,)
    except ImportError:
        pass
    from aegir.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # training/eval reuse freed activation memory instead of re-faulting it
    try:
        app()
    except user_errors as e:  # user data mistakes: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
