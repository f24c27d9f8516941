"""Ctrl-C / SIGTERM during a training loop: finish the step under way, then stop where a checkpoint can be saved.

Shared by `aegir train` (SIGINT) and `aegir pretrain` (SIGINT and SIGTERM: SIGTERM is how clusters pre-empt jobs).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from aegir.checkpoint import FINAL_NAME, list_checkpoints


class InterruptGuard:
    """SIGINT during training: inside a step (update, counters, its metrics record) it is held until the
    step ends, so the weights, optimizer, EMA, step and data position saved at the interrupt agree;
    elsewhere, or at a second Ctrl-C within one step, KeyboardInterrupt comes at once (`torn` then says
    the step was cut and its state must not be saved). Main thread only (signals); a no-op elsewhere.

    `signals`: the signals handled so (default SIGINT only); `signum` is the one that arrived."""

    def __init__(self, enabled: bool, signals: tuple[int, ...] = (signal.SIGINT,)) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signals = signals
        self.in_step = self.pending = self.torn = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "InterruptGuard":
        if self.enabled:
            self._old = {s: signal.signal(s, self._handler) for s in self.signals}
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            for s, old in self._old.items():
                signal.signal(s, old)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if self.in_step and not self.pending:
            self.pending = True
            return
        self.torn = self.in_step
        raise KeyboardInterrupt

    def begin(self) -> None:
        self.in_step = True

    def end(self) -> None:
        self.in_step = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def interrupt_message(run_dir: Path, step: int, command: str = "aegir train") -> str:
    """What a Ctrl-C leaves: the step reached, the newest step checkpoint, how to continue."""
    steps = [p for p in list_checkpoints(run_dir) if p.name != FINAL_NAME]
    if not steps:
        return f"interrupted at step {step}; no checkpoint yet: nothing to resume (start the run again)"
    last = steps[-1]
    return (f"interrupted at step {step}; last checkpoint: step {int(last.stem.split('-')[1])} ({last}); "
            f"resume with: {command} --resume {run_dir}")
