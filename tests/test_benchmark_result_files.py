"""benchmarks/result_files.py: a dotted result stem (a threshold in the name) keeps its dots."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from result_files import result_file  # noqa: E402


def test_dotted_stems_do_not_collide():
    a, b = result_file("docs/results/cta_t0.02", ".json"), result_file("docs/results/cta_t0.05", ".json")
    assert a == Path("docs/results/cta_t0.02.json") and b == Path("docs/results/cta_t0.05.json")
    assert result_file("out/cta", ".md") == Path("out/cta.md")
    assert result_file("out/cta.md", ".png") == Path("out/cta.png")  # a stem given with its extension
