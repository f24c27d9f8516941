"""metrics.jsonl (one JSON record per line, flushed as written) mirrored to TensorBoard (`tb/`).

Shared by pretraining and fine-tuning. Only the main process logs. On resume the log is rewound to
the checkpoint's step, so a killed run's records past its last checkpoint do not appear twice.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("aegir.train")


class MetricsLog:
    """metrics.jsonl (+ TensorBoard) on the main rank; rewound to `start_step` on resume."""

    def __init__(self, run_dir: Path, start_step: int, tensorboard: bool, enabled: bool,
                 keep_events_at_start: tuple[str, ...] = ()) -> None:
        """keep_events_at_start: events logged at `start_step` *before* that step's checkpoint was
        saved (pretraining's held-out eval), so part of the state resumed from: kept, not rewound."""
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        kept_at_start: list[dict[str, Any]] = []
        if self.path.exists():  # drop records a crashed session wrote after the checkpoint
            keep = []
            for rec in _parse(self.path):
                step = rec.get("step", 0)
                if step < start_step or (step == start_step and rec.get("event") in keep_events_at_start):
                    keep.append(rec)
                    if step == start_step:
                        kept_at_start.append(rec)
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(k) + "\n" for k in keep))
            tmp.replace(self.path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
            except ImportError:  # tensorboard is a declared dependency; stay usable without it
                log.warning("tensorboard is not installed: writing metrics.jsonl only")
        for rec in kept_at_start:  # the purge above dropped them from TensorBoard too: put them back
            self._tb_write(rec)

    def write(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self._tb_write(rec)

    def _tb_write(self, rec: dict[str, Any]) -> None:
        if self.tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k != "step" and math.isfinite(v):
                    self.tb.add_scalar(k.replace(".", "/"), v, rec["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _parse(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl. A cut-off last line (the process killed mid-write, a full disk)
    is dropped with a warning; a bad line before it means the file was edited or damaged: an error."""
    from aegir.checkpoint import CheckpointError

    lines = [(i, ln) for i, ln in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if ln.strip()]
    out = []
    for j, (i, ln) in enumerate(lines):
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError as e:
            if j == len(lines) - 1:
                log.warning("%s: line %d is cut off (the run was killed while writing it); dropped", path, i)
                break
            raise CheckpointError(f"{path}: line {i} is not a JSON record ({e.msg}); fix or delete that line") from None
    return out


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    p = Path(run_dir) / "metrics.jsonl"
    if not p.is_file():
        return []
    return _parse(p)
