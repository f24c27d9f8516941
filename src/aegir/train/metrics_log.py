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

    def __init__(self, run_dir: Path, start_step: int, tensorboard: bool, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop records a crashed session wrote after the checkpoint
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) < start_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(k + "\n" for k in keep))
            tmp.replace(self.path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
            except ImportError:  # tensorboard is a declared dependency; stay usable without it
                log.warning("tensorboard is not installed: writing metrics.jsonl only")

    def write(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k != "step" and math.isfinite(v):
                    self.tb.add_scalar(k.replace(".", "/"), v, rec["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    p = Path(run_dir) / "metrics.jsonl"
    if not p.is_file():
        return []
    return [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
