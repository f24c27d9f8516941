"""Where a benchmark writes its result files: `--result STEM` -> STEM.md, STEM.json, STEM.png."""

from __future__ import annotations

from pathlib import Path

EXTENSIONS = (".md", ".json", ".png")


def result_file(stem: str | Path, ext: str) -> Path:
    """`docs/results/cta_t0.05` + ".json" -> `docs/results/cta_t0.05.json`. Path.with_suffix would
    read ".05" as the suffix and replace it (two runs with thresholds 0.02 and 0.05 then overwrite one
    `cta_t0.json`). A stem given with one of the result extensions loses it first."""
    p = Path(stem)
    if p.suffix in EXTENSIONS:
        p = p.with_suffix("")
    return p.with_name(p.name + ext)


def write_json(stem: str | Path, result: dict) -> None:
    """The result's figures as STEM.json (the folder made if need be)."""
    import json

    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    result_file(stem, ".json").write_text(json.dumps(result, indent=1))


def write_markdown(stem: str | Path, lines: list[str]) -> None:
    """The result's table as STEM.md, and on the terminal."""
    text = "\n".join(lines)
    result_file(stem, ".md").write_text(text + "\n")
    print(text)
