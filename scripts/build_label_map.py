"""Rebuild src/aegir/resources/vocab_label_map.json from the shared benchmark files.

Run once by a maintainer (`python scripts/build_label_map.py ../shared/data`); the JSON is committed so
the package never needs ../shared at run time. Orders: SOTAB keeps the order of the benchmark's own label
files; GitTables uses the benchmark's `class_id` order. WikiTables (TURL) label lists are not obtainable
offline: their entries carry only the published size and are built from the training data when used.
"""

from __future__ import annotations

import csv
import glob
import json
import sys
from pathlib import Path


def gittables_labels(folder: Path) -> list[str]:
    by_id: dict[int, str] = {}
    for f in sorted(glob.glob(str(folder / "*.csv"))):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                cid = int(row["class_id"])
                if cid >= 0:
                    prev = by_id.setdefault(cid, row["class"])
                    assert prev == row["class"], (f, cid, prev, row["class"])
    assert sorted(by_id) == list(range(len(by_id))), "class ids are not contiguous"
    return [by_id[i] for i in range(len(by_id))]


def main(shared: Path) -> None:
    sotab = shared / "sotab_v2_sample" / "labels"
    cta = json.loads((sotab / "cta_labels.json").read_text())
    cpa = json.loads((sotab / "cpa_labels.json").read_text())
    subset = [l.strip() for l in (sotab / "cta_50label_subset.txt").read_text().splitlines() if l.strip()]
    gt = shared / "gittables_semtab22"
    out = {
        "sotab-cta": {"labels": list(cta), "descriptions": cta, "source": "SOTAB V2 cta_labels.json"},
        "sotab-cta-50": {"labels": [l for l in cta if l in set(subset)], "source": "SOTAB V2 50-label subset"},
        "sotab-cpa": {"labels": list(cpa), "descriptions": cpa, "source": "SOTAB V2 cpa_labels.json"},
        "gittables-dbpedia": {"labels": gittables_labels(gt / "gt-semtab22-dbpedia-all"),
                              "source": "GitTables SemTab-22 dbpedia folds, class_id order"},
        "gittables-schema": {"labels": gittables_labels(gt / "gt-semtab22-schema-property-all"),
                             "source": "GitTables SemTab-22 schema-property folds, class_id order"},
        "wikitables-cta": {"labels": [], "expected_size": 255,
                           "source": "TURL Freebase types: not available offline; built from the training data"},
        "wikitables-cpa": {"labels": [], "expected_size": 121,
                           "source": "TURL relations: not available offline; built from the training data"},
    }
    dest = Path(__file__).resolve().parents[1] / "src" / "aegir" / "resources" / "vocab_label_map.json"
    dest.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print({k: len(v["labels"]) or v.get("expected_size") for k, v in out.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
