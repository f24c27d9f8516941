"""VERL custom reward for aegir text -> schema -> table.

Select it with `custom_reward_function.path=<this file> custom_reward_function.name=compute_score`.
VERL imports this file by path inside its reward workers, so it only re-exports part 1's pure-Python
scorer (no torch / transformers import): the stage comes from `extra_info["stage"]` (written by
`aegir t2t export-verl`), else from the ground truth's shape. Returns a dict whose "score" VERL uses as
the reward; the other keys (format, cell F1, ...) are logged as reward extras.
"""

from __future__ import annotations

from typing import Any

from aegir.t2t.rewards import compute_score as _aegir_compute_score


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  **kwargs: Any) -> dict[str, float]:
    return _aegir_compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
