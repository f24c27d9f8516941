"""Liveness report output: JSON, a readable rich table, and PNG plots.

Plots use matplotlib's object API on an Agg canvas (no pyplot global state, no backend switch
in the caller's process). Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from aegir.diagnostics.liveness import LivenessReport
from aegir.evaluation._io import atomic_write_bytes

__all__ = [
    "format_report",
    "report_tables",
    "write_report_json",
    "plot_cluster_sizes",
    "plot_label_histogram",
    "plot_boundary_rates",
    "write_report_files",
]


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null. Tuples become lists, numpy scalars Python ones."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_report_json(report: LivenessReport, path: str | Path) -> Path:
    # default=str: free-form meta (paths, enums) must never make the report unwritable.
    text = json.dumps(_clean(report.to_dict()), indent=2, ensure_ascii=False, allow_nan=False, default=str)
    return atomic_write_bytes(Path(path), (text + "\n").encode("utf-8"))


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.3f}"


def report_tables(report: LivenessReport) -> list[Any]:
    """The rich renderables: the gate table, MCL per inflation, chunker stages."""
    from rich.table import Table as RichTable

    verdict = "PASS" if report.passed else "FAIL"
    gate = RichTable(title=f"liveness gate: {verdict}", show_lines=False)
    for c, j in (("check", "left"), ("figure", "right"), ("threshold", "right"), ("result", "center"), ("detail", "left")):
        gate.add_column(c, justify=j, overflow="fold")  # type: ignore[arg-type]
    for c in report.checks:
        thr = "-" if c.threshold is None else f"{c.op} {_fmt(c.threshold)}"
        res = "info" if c.passed is None else ("pass" if c.passed else ("FAIL" if c.required else "warn"))
        gate.add_row(c.name, _fmt(c.figure), thr, res, c.detail)

    mcl = RichTable(title=f"MCL on a cosine {report.mcl.k}-NN graph ({report.mcl.n_points} of {report.mcl.n_total} columns)")
    for c in ("inflation", "clusters", f">= {report.config.min_cluster_size} members", "largest sizes", "iterations"):
        mcl.add_column(c, justify="left" if c == "largest sizes" else "right")
    for r in report.mcl.results:
        sizes = ", ".join(str(s) for s in r.sizes[:10]) + (" ..." if r.n_clusters > 10 else "")
        mcl.add_row(f"{r.inflation:g}", str(r.n_clusters), str(r.count(report.config.min_cluster_size)), sizes,
                    f"{r.iterations}{'' if r.converged else ' (not converged)'}")

    out: list[Any] = [gate, mcl]
    if report.stages:
        st = RichTable(title="chunker health per H-Net stage")
        for c in ("stage", "sequences", "mean length", "boundary fraction", "free rate", "no-boundary seqs",
                  "all-boundary seqs", "verdict"):
            st.add_column(c, justify="right")
        for s in report.stages:
            st.add_row(str(s.stage), str(s.n_sequences), f"{s.mean_length:.1f}", f"{s.boundary_fraction:.3f}",
                       f"{s.free_rate:.3f}", f"{s.share_no_boundary:.1%}", f"{s.share_all_boundary:.1%}",
                       s.reason or "ok")
        out.append(st)
    return out


def format_report(report: LivenessReport, width: int = 110) -> str:
    """The report as plain text (tables + verdict + reasons), for terminals and liveness.txt."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    for t in report_tables(report):
        console.print(t)
    m = report.metrics
    console.print(f"validation: {m.n} columns, micro-F1 {m.micro_f1:.4f}, macro-F1 {m.macro_f1:.4f}, "
                  f"{report.collapse.n_distinct_predicted} distinct predicted labels, mode share "
                  f"{report.collapse.mode_share:.1%} ({report.collapse.mode_label})")
    if report.passed:
        console.print("VERDICT: PASS")
    else:
        console.print("VERDICT: FAIL")
        for f in report.failures:
            console.print(f"  - {f}")
    return buf.getvalue()


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def plot_cluster_sizes(report: LivenessReport, path: str | Path, top: int = 40) -> Path:
    """One panel per inflation (coarse first): cluster sizes, largest first."""
    res = report.mcl.results
    fig = _figure(9.0, 1.9 * len(res) + 0.6)
    for i, r in enumerate(res):
        ax = fig.add_subplot(len(res), 1, i + 1)
        sizes = r.sizes[:top]
        colors = ["tab:blue" if s >= report.config.min_cluster_size else "tab:gray" for s in sizes]
        ax.bar(range(len(sizes)), sizes, color=colors)
        more = f", {r.n_clusters - top} more not shown" if r.n_clusters > top else ""
        tag = " (coarse: gated)" if i == 0 else ""
        ax.set_title(f"inflation {r.inflation:g}{tag}: {r.n_clusters} clusters, "
                     f"{r.count(report.config.min_cluster_size)} with >= {report.config.min_cluster_size}{more}",
                     fontsize=9)
        ax.set_ylabel("size", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.axes[-1].set_xlabel("cluster rank")
    return _save(fig, Path(path))


def plot_label_histogram(report: LivenessReport, path: str | Path, top: int = 40) -> Path:
    """Predicted vs gold label counts for the `top` labels most frequent in either."""
    pc, gc = dict(report.predicted_counts), dict(report.gold_counts)
    labels = sorted(set(pc) | set(gc), key=lambda lab: (-(pc.get(lab, 0) + gc.get(lab, 0)), lab))[:top]
    fig = _figure(max(7.0, 0.3 * len(labels) + 2.0), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.arange(len(labels))
    ax.bar(xs - 0.2, [gc.get(lab, 0) for lab in labels], width=0.4, label="gold", color="tab:gray")
    ax.bar(xs + 0.2, [pc.get(lab, 0) for lab in labels], width=0.4, label="predicted", color="tab:orange")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("columns")
    n_all = len(set(pc) | set(gc))
    ax.set_title(f"predicted labels ({len(pc)} distinct; mode share {report.collapse.mode_share:.1%})"
                 + (f"; top {top} of {n_all}" if n_all > top else ""), fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_boundary_rates(report: LivenessReport, path: str | Path) -> Path:
    """Per stage: boundary fraction and free rate, with the degenerate-zone thresholds."""
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    st = report.stages
    if not st:
        ax.text(0.5, 0.5, "no boundary statistics given", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _save(fig, Path(path))
    xs = np.arange(len(st))
    ax.bar(xs - 0.2, [s.boundary_fraction for s in st], width=0.4, label="boundary fraction", color="tab:blue")
    ax.bar(xs + 0.2, [s.free_rate for s in st], width=0.4, label="free rate (beyond position 0)",
           color=["tab:red" if s.degenerate else "tab:green" for s in st])
    bc = report.config.boundary
    ax.axhline(bc.all_boundary_at, ls="--", color="tab:red", lw=0.8, label="degenerate zone")
    ax.axhline(bc.no_boundary_at, ls="--", color="tab:red", lw=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"stage {s.stage}" + (f"\n{s.reason}" if s.reason else "") for s in st], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title("chunker boundary rates", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, Path(path))


def write_report_files(report: LivenessReport, out_dir: str | Path) -> dict[str, Path]:
    """liveness.json, liveness.txt and the PNGs (plus confusion.png for single-label tasks)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "json": write_report_json(report, out / "liveness.json"),
        "text": atomic_write_bytes(out / "liveness.txt", format_report(report).encode("utf-8")),
        "cluster_sizes": plot_cluster_sizes(report, out / "cluster_sizes.png"),
        "label_histogram": plot_label_histogram(report, out / "predicted_labels.png"),
        "boundary_rates": plot_boundary_rates(report, out / "boundary_rates.png"),
    }
    if report.confusion is not None:
        from aegir.evaluation import plot_confusion_matrix

        files["confusion"] = plot_confusion_matrix(report.confusion, out / "confusion.png", title="validation confusion")
    return files
