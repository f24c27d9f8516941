"""The pretraining corpus: a weighted mixture of natural-language text, SQL DDL and table serializations.

Three byte streams ("kinds"), each a concatenation of documents written as `[BOS] ids [EOS]`:
  text    natural language: user .txt/.md/.jsonl/.parquet(text column) files, or the embedded default
          (Python's reference docs in `pydoc_data`, stdlib docstrings read with `ast` (never imported),
          license texts of installed packages and /usr/share/common-licenses, scikit-learn dataset cards)
  ddl     `CREATE TABLE` statements generated from every table below (names, inferred SQL types,
          NOT NULL / PRIMARY KEY where the data implies them; quoting and case vary per table)
  tables  `serialize_table_text` of every table (the one serialization fine-tuning also uses), one
          document per (row slice, target column), so the pretrained model sees fine-tuning's layout
Tables come from user files - .csv/.tsv/.parquet, SOTAB table files (.json.gz / .json, JSON lines
keyed by column index) and GitTables fold CSVs (`table_id,col_idx,class,class_id,data`, read as
their tables; the labels are not used) - or by default from `aegir.tables.synth` (when present),
scikit-learn's bundled CSVs and the `bokeh-sampledata` package (when installed). Benchmark folders
given here must be training splits: whatever is read becomes pretraining text.

Sampling is a pure function of (seed, split, sample index): the index picks a kind by the mixture
weights and a uniformly random window of `seq_len` ids from that kind's stream. Resuming at sample
k or sharding a global batch across processes therefore needs no sampler state at all.
Documents are split train / held-out by a content hash, so the split never depends on file order.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import json
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from aegir.encoding.ddl import sql_type, table_ddl  # noqa: F401 - re-exported for callers
from aegir.encoding.serialize import SerializeConfig, serialize_table_text
from aegir.encoding.vocab import BOS, EOS, encode_text
from aegir.tables.table import Table, TableError

KINDS = ("text", "ddl", "tables")
PRESETS: dict[str, dict[str, float]] = {
    # mixed-v2: tables dominate the downstream task, text keeps general byte statistics, DDL ties
    # column names to types. (v1 had no DDL.)
    "mixed-v2": {"text": 0.4, "ddl": 0.2, "tables": 0.4},
    "text": {"text": 1.0},
    "tables": {"tables": 0.7, "ddl": 0.3},
}
TEXT_EXT = {".txt", ".md", ".rst", ".text"}
TABLE_EXT = {".csv", ".tsv", ".tab"}
GITTABLES_HEADER = ("table_id", "col_idx", "class")  # first fields of a GitTables fold CSV


class CorpusError(TableError):
    """Bad corpus input; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class CorpusConfig:
    preset: str = "mixed-v2"
    data: tuple[str, ...] = ()          # user files/folders; empty = embedded default
    # Files/folders whose tables must NOT be read from `data` (evaluation tables): a data file is
    # skipped when its table key (see `table_key`) matches one of theirs. Nothing here is read.
    exclude: tuple[str, ...] = ()
    embedded: bool | None = None        # None: embedded default only when `data` is empty
    seq_len: int = 512
    seed: int = 0
    max_cell_bytes: int = SerializeConfig.max_cell_bytes  # longest cell in table serializations
    heldout_fraction: float = 0.05
    max_text_bytes: int = 2_000_000     # embedded text budget
    n_synth_tables: int = 200
    max_table_rows: int = 400           # rows read per real table (it is sliced further)
    rows_per_doc: int = 24
    targets_per_slice: int = 3          # serializations per row slice, each with a different target
    ddl_per_table: int = 3              # DDL variants per table (dialect, slice-dependent types)
    jsonl_field: str = "text"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise CorpusError(f"unknown corpus config {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.seq_len < 2:
            raise CorpusError(f"seq_len must be >= 2, got {self.seq_len}")
        try:  # the serializer checks its own fields
            self.serialize_config()
        except ValueError as e:
            raise CorpusError(str(e)) from None
        if not 0 < self.heldout_fraction < 0.5:
            raise CorpusError(f"heldout_fraction must be in (0, 0.5), got {self.heldout_fraction}")
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
        object.__setattr__(self, "exclude", tuple(str(d) for d in self.exclude))
        if self.exclude and not self.data:
            # The embedded corpus holds no user tables, so an exclusion list would silently do nothing.
            raise CorpusError(f"--exclude {list(self.exclude)} skips --data files; no --data was given, "
                              "so there is nothing to skip")

    def serialize_config(self) -> SerializeConfig:
        """How table documents are serialized: fine-tuning's layout within one training window."""
        return SerializeConfig(max_bytes=max(64, min(self.seq_len, 1024)), max_cell_bytes=self.max_cell_bytes)


@dataclass
class Docs:
    """Documents collected per kind (before the held-out split)."""

    text: list[list[int]] = field(default_factory=list)
    ddl: list[list[int]] = field(default_factory=list)
    tables: list[list[int]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # what was read, for logs
    excluded: list[str] = field(default_factory=list)  # data files skipped by CorpusConfig.exclude


@dataclass
class KindStats:
    weight: float
    n_docs: int
    train_ids: int
    heldout_ids: int


# --------------------------------------------------------------------------------------------------
# reading sources
# --------------------------------------------------------------------------------------------------
def _split_text(text: str, max_bytes: int = 4096) -> list[str]:
    """Paragraph-aligned chunks of at most ~max_bytes, so one big file still yields many documents."""
    out, cur, size = [], [], 0
    for para in re.split(r"\n\s*\n", text):
        p = para.strip("\n")
        if not p.strip():
            continue
        n = len(p.encode("utf-8", "replace"))
        if cur and size + n > max_bytes:
            out.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(p)
        size += n + 2
    if cur:
        out.append("\n\n".join(cur))
    return out


def _read_jsonl(path: Path, fld: str) -> list[str]:
    texts = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}, line {ln}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or fld not in obj:
                raise CorpusError(f"{path}, line {ln}: no {fld!r} field (set the text field name to read another)")
            if not isinstance(obj[fld], str):
                raise CorpusError(f"{path}, line {ln}: field {fld!r} is {type(obj[fld]).__name__}, expected a string")
            texts.append(obj[fld])
    return texts


def _read_parquet(path: Path, fld: str, max_rows: int) -> tuple[list[str], Table | None]:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise CorpusError(f"{path}: cannot read parquet ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if fld in df.columns and df[fld].map(lambda v: isinstance(v, str) or v is None).all():
        return [v for v in df[fld].tolist() if v], None
    from aegir.tables.readers.csv import from_dataframe

    return [], from_dataframe(df.head(max_rows), meta={"source": "parquet", "name": path.name})


_SOTAB_TASK_SUFFIX = re.compile(r"_(CTA|CPA)$")


def table_key(path: Path) -> str:
    """The identity of the table in a file, for `CorpusConfig.exclude`: the file name without its
    extension and, for SOTAB, without the task suffix, because SOTAB V2 ships one web table as
    `X_CTA.json.gz` in the CTA split and as `X_CPA.json.gz` in the CPA split."""
    name = path.name
    for ext in (".json.gz", ".json"):
        if name.lower().endswith(ext):
            return _SOTAB_TASK_SUFFIX.sub("", name[: -len(ext)])
    return path.stem


def _source_files(paths: tuple[str, ...], flag: str) -> list[Path]:
    """Every readable file named by `paths` (folders are searched recursively)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _kind_of(f) is not None)
            if not found:
                raise CorpusError(f"{flag} {p}: folder has no .txt/.md/.jsonl/.parquet/.csv/.tsv/.sql/.json.gz files")
            files += found
        elif p.is_file():
            if _kind_of(p) is None:
                raise CorpusError(f"{flag} {p}: unsupported file type (use .txt, .md, .jsonl, .parquet, .csv, .tsv, "
                                  ".sql, or a SOTAB table .json.gz)")
            files.append(p)
        else:
            raise CorpusError(f"{flag} {p}: no such file or folder")
    return files


def _read_document(path: Path) -> str:
    """A user text/SQL file in its own encoding, detected as for CSV tables (a Latin-1 "Café" stays
    "Café", not "Caf\ufffd"); a binary-looking file is a TableError naming it, as an unreadable CSV is."""
    from aegir.tables.readers.csv import detect_encoding

    raw = path.read_bytes()
    return raw.decode(detect_encoding(raw, path), errors="replace")


def read_user_sources(files: list[Path], cfg: CorpusConfig) -> tuple[list[str], list[Table], list[str], list[str]]:
    """(texts, tables, ddl statements, file names) from user files (`split_sources`' first list)."""
    from aegir.tables.readers.csv import read_csv
    from aegir.tables.readers.gittables import read_gittables
    from aegir.tables.readers.sotab import read_sotab_table

    texts: list[str] = []
    tables: list[Table] = []
    ddls: list[str] = []
    names: list[str] = []
    for f in files:
        k = _kind_of(f)
        names.append(str(f))
        if k == "text":
            texts.append(_read_document(f))
        elif k == "jsonl":
            texts += _read_jsonl(f, cfg.jsonl_field)
        elif k == "parquet":
            t, tab = _read_parquet(f, cfg.jsonl_field, cfg.max_table_rows)
            texts += t
            if tab is not None:
                tables.append(tab)
        elif k == "sql":
            ddls += [s.strip() + "\n" for s in _read_document(f).split(";\n") if s.strip()]
        elif k == "sotab":
            tables.append(_first_rows(read_sotab_table(f), cfg.max_table_rows))
        elif _is_gittables_fold(f):
            tables += [_first_rows(t, cfg.max_table_rows) for t in read_gittables(f).tables]
        else:
            tables.append(read_csv(f, max_rows=cfg.max_table_rows))
    return texts, tables, ddls, names


def split_sources(paths: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """(files to read, files skipped): the files of `paths`, split by whether their table key is one
    of the keys of the files in `exclude`."""
    files = _source_files(paths, "--data")
    if not exclude:
        return files, []
    keys = {table_key(f) for f in _source_files(exclude, "--exclude")}
    keep: list[Path] = []
    skipped: list[Path] = []
    for f in files:
        (skipped if table_key(f) in keys else keep).append(f)
    if not keep:
        raise CorpusError(f"--exclude {list(exclude)} removes every file of --data {list(paths)}: nothing is left to read")
    return keep, skipped


def _first_rows(t: Table, n: int) -> Table:
    """The table cut to its first n rows (what read_csv's max_rows does for CSV files)."""
    return Table([c[:n] for c in t.columns], t.header, t.meta)


def _is_gittables_fold(path: Path) -> bool:
    """A GitTables fold CSV (one row per column) rather than a plain table: read its tables instead."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().strip().lstrip("\ufeff")
    return tuple(first.split(",")[: len(GITTABLES_HEADER)]) == GITTABLES_HEADER


def _kind_of(p: Path) -> str | None:
    name = p.name.lower()
    if name.endswith(".json.gz") or name.endswith(".json"):
        return "sotab"
    suf = p.suffix.lower()
    if suf in TEXT_EXT:
        return "text"
    if suf in TABLE_EXT:
        return "table"
    return {".jsonl": "jsonl", ".parquet": "parquet", ".sql": "sql"}.get(suf)


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            d = ast.get_docstring(node)
            if d and len(d) > 80:  # one-liners are mostly boilerplate ("Return self.")
                out.append(d)
    return out


def embedded_texts(max_bytes: int) -> list[str]:
    """Natural-language text every fresh install has, in a fixed order, about `max_bytes` in total.

    Four shares: Python's reference topics, stdlib docstrings, license texts, dataset cards.
    """
    share = max_bytes // 4
    groups: list[list[str]] = [[], [], [], []]
    try:
        from pydoc_data.topics import topics

        groups[0] = [topics[k] for k in sorted(topics)]
    except ImportError:  # some distro Pythons strip pydoc_data
        pass
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for f in sorted(stdlib.glob("*.py")):
        if sum(map(len, groups[1])) > share:
            break
        groups[1] += _docstrings(f)
    lic: list[Path] = sorted(Path("/usr/share/common-licenses").glob("*")) if Path("/usr/share/common-licenses").is_dir() else []
    site = Path(sysconfig.get_paths()["purelib"])
    lic += sorted(site.glob("*.dist-info/LICENSE*")) + sorted(site.glob("*.dist-info/licenses/*"))
    seen: set[str] = set()
    for f in lic:
        if not f.is_file() or f.stat().st_size > 200_000:
            continue
        t = f.read_text(encoding="utf-8", errors="replace")
        h = hashlib.sha1(t.encode("utf-8", "replace")).hexdigest()
        if h not in seen:  # many packages ship the same MIT/BSD text
            seen.add(h)
            groups[2].append(t)
    spec = importlib.util.find_spec("sklearn")
    if spec and spec.submodule_search_locations:
        descr = Path(spec.submodule_search_locations[0]) / "datasets" / "descr"
        groups[3] = [f.read_text(encoding="utf-8", errors="replace") for f in sorted(descr.glob("*.rst"))]
    out: list[str] = []
    for g in groups:
        budget = share
        for t in g:
            if budget <= 0:
                break
            out.append(t[:budget])
            budget -= len(t)
    return out


def embedded_tables(cfg: CorpusConfig) -> list[Table]:
    """Synthetic tables (when `aegir.tables.synth` exists) plus real tables shipped in packages."""
    import pandas as pd

    from aegir.tables.readers.csv import from_dataframe

    tables: list[Table] = []
    try:
        from aegir.tables.synth import generate_tables
    except ImportError:
        generate_tables = None
    if generate_tables is not None and cfg.n_synth_tables > 0:
        # A seed offset keeps pretraining's synthetic tables apart from the ones fine-tuning and
        # evaluation draw with small seeds (label leakage through pretraining would flatter them).
        synth = generate_tables(cfg.n_synth_tables, seed=cfg.seed + 1_000_003)
        tables += list(getattr(synth, "tables", synth))
    files: list[Path] = []
    for pkg, sub in (("sklearn", "datasets/data"), ("bokeh_sampledata", "_data")):
        spec = importlib.util.find_spec(pkg)  # locates without importing the package
        if spec and spec.submodule_search_locations:
            d = Path(spec.submodule_search_locations[0]) / sub
            files += sorted(d.glob("*.csv")) + sorted(d.glob("*.csv.gz"))
    for f in files:
        try:
            with (gzip.open(f, "rt", encoding="utf-8", errors="replace") if f.suffix == ".gz" else open(f, encoding="utf-8", errors="replace")) as fh:
                df = pd.read_csv(fh, nrows=cfg.max_table_rows, dtype=str, keep_default_na=False)
        except Exception:  # noqa: BLE001 - a malformed bundled file is skipped, not fatal
            continue
        if df.shape[1] >= 2 and len(df):
            tables.append(from_dataframe(df, meta={"source": "package", "name": f.name.split(".")[0]}))
    return tables


def table_docs(tables: list[Table], cfg: CorpusConfig) -> tuple[list[list[int]], list[list[int]]]:
    """(serialization documents, DDL documents) for a list of tables."""
    scfg = cfg.serialize_config()
    ser, ddl = [], []
    for ti, t in enumerate(tables):
        if t.n_cols == 0:
            continue
        rng = np.random.default_rng([cfg.seed, 7, ti])
        # Rows are shuffled before slicing: files are often sorted, and a sorted slice of a
        # sorted column is one repeated value.
        order = rng.permutation(t.n_rows)
        for start in range(0, max(t.n_rows, 1), cfg.rows_per_doc):
            rows = order[start : start + cfg.rows_per_doc]
            part = Table([[c[i] for i in rows] for c in t.columns], t.header, dict(t.meta))
            if start // cfg.rows_per_doc < cfg.ddl_per_table:
                ddl.append(encode_text(table_ddl(part, rng, name=t.name)))
            k = min(cfg.targets_per_slice, t.n_cols)
            for target in rng.choice(t.n_cols, size=k, replace=False):
                ser.append(serialize_table_text(part, scfg, target=int(target)))
    return ser, ddl


def collect_docs(cfg: CorpusConfig) -> Docs:
    docs = Docs()
    texts: list[str] = []
    tables: list[Table] = []
    ddls: list[str] = []
    if cfg.data:
        files, skipped = split_sources(cfg.data, cfg.exclude)
        docs.excluded = [str(f) for f in skipped]
        texts, tables, ddls, docs.names = read_user_sources(files, cfg)
    if cfg.embedded or (cfg.embedded is None and not cfg.data):
        texts += embedded_texts(cfg.max_text_bytes)
        tables += embedded_tables(cfg)
        docs.names.append("<embedded>")
    for t in texts:
        docs.text += [encode_text(c) for c in _split_text(t)]
    ser, ddl = table_docs(tables, cfg)
    docs.tables += ser
    docs.ddl += ddl + [encode_text(s) for s in ddls]
    return docs


# --------------------------------------------------------------------------------------------------
# the mixture
# --------------------------------------------------------------------------------------------------
def _is_heldout(doc: list[int], fraction: float) -> bool:
    h = hashlib.blake2b(np.asarray(doc, dtype=np.uint16).tobytes(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64 < fraction


def _split(ds: list[list[int]], fraction: float) -> tuple[list[list[int]], list[list[int]]]:
    """(train, held-out) documents by content hash; both sides are never empty."""
    flags = [_is_heldout(d, fraction) for d in ds]
    if len(ds) >= 2 and (all(flags) or not any(flags)):
        flags[-1] = not flags[-1]
    tr = [d for d, f in zip(ds, flags) if not f]
    ho = [d for d, f in zip(ds, flags) if f]
    if not tr or not ho:  # a single document: its tail is the held-out slice
        cut = max(1, int(len(ds[0]) * (1 - fraction)))
        tr, ho = [ds[0][:cut]], [ds[0][cut:] or ds[0][-1:]]
    return tr, ho


def _stream(docs: list[list[int]]) -> np.ndarray:
    parts = [np.asarray([BOS, *d, EOS], dtype=np.int16) for d in docs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


class Corpus:
    """Train and held-out id streams per kind, with deterministic windowed sampling."""

    def __init__(self, cfg: CorpusConfig, docs: Docs) -> None:
        self.cfg = cfg
        self.sources = docs.names
        self.excluded = docs.excluded
        self.train: dict[str, np.ndarray] = {}
        self.heldout: dict[str, np.ndarray] = {}
        self.n_docs: dict[str, int] = {}
        for kind in KINDS:
            ds = getattr(docs, kind)
            if PRESETS[cfg.preset].get(kind, 0.0) <= 0 or not ds:
                continue
            tr, ho = _split(ds, cfg.heldout_fraction)
            self.train[kind], self.heldout[kind] = _stream(tr), _stream(ho)
            self.n_docs[kind] = len(ds)
        if not self.train:
            raise CorpusError(
                f"corpus {cfg.preset!r} is empty: none of its kinds {sorted(PRESETS[cfg.preset])} "
                f"has documents in {list(cfg.data) or ['<embedded>']}"
            )
        w = {k: PRESETS[cfg.preset][k] for k in self.train}
        total = sum(w.values())
        self.weights = {k: v / total for k, v in w.items()}  # kinds without data are dropped
        self.kinds = list(self.weights)
        self._cum = np.cumsum([self.weights[k] for k in self.kinds])

    # --- facts ------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of every stream and the weights: equal fingerprints mean equal data order."""
        h = hashlib.sha256(json.dumps([self.cfg.seq_len, self.cfg.seed, self.weights], sort_keys=True).encode())
        for k in self.kinds:
            h.update(self.train[k].tobytes())
            h.update(self.heldout[k].tobytes())
        return h.hexdigest()

    def stats(self) -> dict[str, KindStats]:
        return {
            k: KindStats(self.weights[k], self.n_docs[k], int(self.train[k].size), int(self.heldout[k].size))
            for k in self.kinds
        }

    # --- sampling ---------------------------------------------------------------------------
    def _window(self, stream: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        T = self.cfg.seq_len
        start = int(rng.integers(stream.size))
        return np.take(stream, np.arange(start, start + T), mode="wrap").astype(np.int64)  # (T,)

    def sample(self, index: int) -> np.ndarray:
        """Training window number `index` (T,) - a pure function of (seed, index)."""
        rng = np.random.default_rng([self.cfg.seed, 0, int(index)])
        kind = self.kinds[min(int(np.searchsorted(self._cum, rng.random(), side="right")), len(self.kinds) - 1)]
        return self._window(self.train[kind], rng)

    def batch(self, indices) -> np.ndarray:
        """(B, T) int64 training windows for the given global sample indices."""
        return np.stack([self.sample(i) for i in indices])

    def heldout_batch(self, kind: str, n: int) -> np.ndarray:
        """(n, T) fixed held-out windows of one kind (the same windows every evaluation)."""
        return np.stack([self._window(self.heldout[kind], np.random.default_rng([self.cfg.seed, 1, KINDS.index(kind), j])) for j in range(n)])


@lru_cache(maxsize=4)
def build_corpus(cfg: CorpusConfig) -> Corpus:
    """Read every source and build the mixture (cached per process: the embedded default takes seconds)."""
    return Corpus(cfg, collect_docs(cfg))


def corpus_summary(c: Corpus) -> str:
    parts = [f"{k}: w={s.weight:.2f} docs={s.n_docs} train={s.train_ids:,} held-out={s.heldout_ids:,}" for k, s in c.stats().items()]
    skipped = f"; {len(c.excluded)} data files skipped by --exclude" if c.excluded else ""
    return "; ".join(parts) + skipped + f" (python {sys.version_info.major}.{sys.version_info.minor})"
