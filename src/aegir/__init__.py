"""Aegir: byte-level table understanding.

High-level API (imported lazily, so `import aegir` stays light):
- `aegir.annotate(df_or_path, checkpoint, labels=None, top_k=3)` -> per-column top-k labels;
- `aegir.annotate_files(paths, checkpoint, out)` -> many CSV/TSV files (folders searched) into JSON
  Lines, resumable;
- `aegir.extract(text, ...)` -> schema + NDJSON rows (text -> schema -> table).
"""

__version__ = "0.1.0"

__all__ = ["annotate", "annotate_files", "extract", "__version__"]


def __getattr__(name: str):
    if name == "annotate":
        from aegir.annotation import annotate

        return annotate
    if name == "annotate_files":
        from aegir.annotate_batch import annotate_files

        return annotate_files
    if name == "extract":
        from aegir.t2t.extract import extract

        return extract
    raise AttributeError(f"module 'aegir' has no attribute {name!r}")
