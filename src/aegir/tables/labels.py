"""Label vocabularies: benchmark key -> ordered label list, and vocabularies built from user data.

`vocab_label_map.json` (package resource) holds the benchmark lists; `LABEL_DIMS` is derived from it.
Lists that cannot be obtained offline (WikiTables/TURL) carry only their published size and are built
from the training data with `LabelVocab.from_labels` when a user trains on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from aegir.tables.table import TableError


@lru_cache(maxsize=1)
def label_map() -> dict[str, dict]:
    text = resources.files("aegir.resources").joinpath("vocab_label_map.json").read_text(encoding="utf-8")
    return json.loads(text)


def benchmark_keys() -> list[str]:
    return list(label_map())


def label_list(key: str) -> list[str]:
    """The ordered label list of a benchmark (empty for lists only buildable from training data)."""
    m = label_map()
    if key not in m:
        raise KeyError(f"unknown label vocabulary {key!r}; known: {', '.join(m)}")
    return list(m[key]["labels"])


def _dims() -> dict[str, int]:
    return {k: (len(v["labels"]) or int(v.get("expected_size", 0))) for k, v in label_map().items()}


LABEL_DIMS: dict[str, int] = _dims()


@dataclass
class LabelVocab:
    """An ordered label set with index lookups; what a classifier checkpoint stores."""

    labels: list[str]
    name: str = "custom"
    source: str = ""
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels):
            dupes = sorted({l for l in self.labels if self.labels.count(l) > 1})
            raise TableError(f"label vocabulary {self.name!r} has duplicate labels: {dupes[:5]}")
        self._index = {l: i for i, l in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: str) -> bool:
        return label in self._index

    def index(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise TableError(f"label {label!r} is not in the {self.name!r} vocabulary ({len(self)} labels)") from None

    @classmethod
    def benchmark(cls, key: str) -> "LabelVocab":
        labels = label_list(key)
        if not labels:
            raise TableError(
                f"the {key!r} label list is not shipped (not available offline); "
                "build it from your training data with LabelVocab.from_labels(...)"
            )
        return cls(labels=labels, name=key, source=label_map()[key].get("source", ""))

    @classmethod
    def from_labels(cls, labels: Iterable[str], name: str = "custom") -> "LabelVocab":
        """A vocabulary from the labels seen in a dataset: sorted, so it is independent of file order."""
        return cls(labels=sorted(set(labels)), name=name, source="built from training data")

    def to_dict(self) -> dict:
        return {"name": self.name, "labels": list(self.labels), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelVocab":
        return cls(labels=list(d["labels"]), name=d.get("name", "custom"), source=d.get("source", ""))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "LabelVocab":
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise TableError(f"{path}: not a label vocabulary file ({e})") from None
