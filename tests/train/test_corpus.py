"""The mixed pretraining corpus: sources, mixture weights, determinism, held-out split, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aegir.encoding.corpus import (Corpus, CorpusConfig, CorpusError, build_corpus, collect_docs, corpus_summary, sql_type,
                                   table_ddl)
from aegir.encoding.vocab import BOS, CLS, EOS, decode_ids
from aegir.tables import Table, TableError


def test_user_folder_gives_all_three_kinds(corpus_dir: Path) -> None:
    c = build_corpus(CorpusConfig(data=(str(corpus_dir),), seq_len=64))
    assert c.kinds == ["text", "ddl", "tables"]
    assert c.weights == pytest.approx({"text": 0.4, "ddl": 0.2, "tables": 0.4})
    text = decode_ids(c.train["text"].tolist() + c.heldout["text"].tolist())
    assert "The " in text and ("chases" in text or "sees" in text)
    ddl = decode_ids(c.train["ddl"].tolist() + c.heldout["ddl"].tolist()).lower()
    assert "create table" in ddl and "pets" in ddl and "city" in ddl
    assert CLS in set(c.train["tables"].tolist())
    for k in c.kinds:  # documents are delimited and both splits are non-empty
        assert c.train[k][0] == BOS and c.heldout[k][-1] == EOS and c.heldout[k].size > 0


def test_sampling_is_deterministic_and_follows_weights(corpus_dir: Path) -> None:
    cfg = CorpusConfig(data=(str(corpus_dir),), seq_len=32, seed=3)
    a, b = build_corpus(cfg), Corpus(cfg, collect_docs(cfg))  # b: rebuilt from the files, not cached
    assert a is not b
    assert np.array_equal(a.batch(range(50, 60)), b.batch(range(50, 60)))
    assert a.fingerprint() == b.fingerprint()
    other = build_corpus(CorpusConfig(data=(str(corpus_dir),), seq_len=32, seed=4))
    assert not np.array_equal(a.batch(range(8)), other.batch(range(8)))
    # the kind of each sample: which stream contains the window
    n = 3000
    counts = {k: 0 for k in a.kinds}
    for i in range(n):
        r = np.random.default_rng([3, 0, i])
        u = r.random()
        k = a.kinds[int(np.searchsorted(a._cum, u, side="right"))]
        counts[k] += 1
    for k, w in a.weights.items():
        assert abs(counts[k] / n - w) < 0.03
    assert a.batch([5]).shape == (1, 32) and a.batch([5]).dtype == np.int64


def test_heldout_documents_are_disjoint_from_train(corpus_dir: Path) -> None:
    c = build_corpus(CorpusConfig(data=(str(corpus_dir),), seq_len=32, heldout_fraction=0.2))
    def docs(stream: np.ndarray) -> set[tuple[int, ...]]:
        out, cur = set(), []
        for x in stream.tolist():
            if x == BOS:
                cur = []
            elif x == EOS:
                out.add(tuple(cur))
            else:
                cur.append(x)
        return out
    for k in c.kinds:
        assert not (docs(c.train[k]) & docs(c.heldout[k]))
    h1, h2 = c.heldout_batch("text", 4), c.heldout_batch("text", 4)
    assert np.array_equal(h1, h2)


def test_sql_types_and_ddl() -> None:
    assert sql_type(["1", "2", "30"]) == "INTEGER"
    assert sql_type(["1", "99999999999"]) == "BIGINT"
    assert sql_type(["1.5", "22.25"]) == "DECIMAL(4,2)"
    assert sql_type(["2024-01-02", ""]) == "DATE"
    assert sql_type(["2024-01-02 10:11:12"]) == "TIMESTAMP"
    assert sql_type(["true", "false"]) == "BOOLEAN"
    assert sql_type(["abc", "defgh"]) == "VARCHAR(8)"
    assert sql_type(["x" * 300]) == "TEXT"
    t = Table.from_rows([["1", "Ann", ""], ["2", "Bo", "3.5"]], header=["ID", "Full Name", "score"], meta={"name": "people.csv"})
    sql = table_ddl(t, np.random.default_rng(0))
    low = sql.lower()
    assert low.startswith("create table") and "people" in low
    assert "id" in low and "primary key" in low and "full_name" in low and "decimal(2,1)" in low


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl, line 2: invalid JSON"):
        build_corpus(CorpusConfig(data=(str(bad),)))
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"body": "x"}\n')
    with pytest.raises(CorpusError, match=r"nofield\.jsonl, line 1: no 'text' field"):
        build_corpus(CorpusConfig(data=(str(nofield),)))
    (tmp_path / "x.bin").write_bytes(b"\0")
    with pytest.raises(CorpusError, match=r"x\.bin: unsupported file type"):
        build_corpus(CorpusConfig(data=(str(tmp_path / "x.bin"),)))
    with pytest.raises(CorpusError, match="no such file"):
        build_corpus(CorpusConfig(data=(str(tmp_path / "missing"),)))
    with pytest.raises(CorpusError, match="unknown corpus config"):
        CorpusConfig(preset="nope")


def test_single_text_file_still_has_heldout(tmp_path: Path) -> None:
    f = tmp_path / "one.txt"
    f.write_text("word " * 500)
    c = build_corpus(CorpusConfig(preset="text", data=(str(f),), seq_len=16))
    assert c.kinds == ["text"] and c.heldout["text"].size > 10


def test_embedded_text_sources_exist() -> None:
    from aegir.encoding.corpus import embedded_texts

    texts = embedded_texts(60_000)
    assert len(texts) >= 3 and 20_000 < sum(map(len, texts)) <= 70_000


def test_sotab_and_gittables_files_become_table_documents(tmp_path: Path) -> None:
    """Benchmark training splits can be pretraining text (domain-adaptive pretraining): SOTAB
    JSON-lines tables and GitTables fold CSVs are read as tables, never as plain CSV rows."""
    import gzip
    import json

    sotab = tmp_path / "Book_example.com_September2020_CTA.json.gz"
    with gzip.open(sotab, "wt") as f:
        for i in range(6):
            f.write(json.dumps({"0": f"Title {i}", "1": f"Author {i}", "2": f"97800000{i}"}) + "\n")
    fold = tmp_path / "sp_semi1_cv_0.csv"
    fold.write_text("table_id,col_idx,class,class_id,data\n"
                    "t1,0,name,3,Ada;Grace;Alan\n" "t1,1,NaN,,1815;1906;1912\n" "t2,0,city,1,Oslo;Lima\n")
    docs = collect_docs(CorpusConfig(data=(str(tmp_path),), seq_len=256))
    text = [decode_ids(d) for d in docs.tables]
    assert any("Title 3" in t and "Author 3" in t for t in text)     # SOTAB cells, one table
    assert any("Ada" in t and "1906" in t for t in text)              # GitTables t1 re-assembled
    assert not any("table_id" in t or "class_id" in t for t in text)  # the fold CSV's own header is not data
    assert not any("name" in t.split() for t in text)                 # labels are not pretraining text
    assert len(docs.names) == 2
    bad = tmp_path / "broken.json.gz"
    bad.write_bytes(gzip.compress(b'{"0": "a"}\nnot json\n'))
    with pytest.raises(TableError, match=r"broken\.json\.gz, line 2: invalid JSON"):
        collect_docs(CorpusConfig(data=(str(bad),)))


def test_exclude_skips_the_evaluation_tables_across_sotab_splits(tmp_path: Path) -> None:
    """--exclude keeps evaluation tables out of domain-adaptive pretraining: SOTAB ships one web table as
    X_CTA.json.gz in CTA/Train and as X_CPA.json.gz in CPA/Train, so CTA training tables that reappear
    in the CPA split (the CPA evaluation folds) must be skipped by table, not by file name."""
    import gzip
    import json

    from aegir.encoding.corpus import split_sources, table_key
    from aegir.train.pretrain import PretrainConfig

    def write(path: Path, word: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as f:
            for i in range(6):
                f.write(json.dumps({"0": f"{word} {i}", "1": f"{word}-{i}@example.com"}) + "\n")

    cta, cpa = tmp_path / "CTA" / "Train", tmp_path / "CPA" / "Train"
    write(cta / "Book_shared.com_September2020_CTA.json.gz", "Leaked")
    write(cta / "Book_own.com_September2020_CTA.json.gz", "Kept")
    write(cpa / "Book_shared.com_September2020_CPA.json.gz", "Evaluated")
    (tmp_path / "notes.txt").write_text("plain text is never a table " * 20)
    assert table_key(cpa / "Book_shared.com_September2020_CPA.json.gz") == "Book_shared.com_September2020"
    assert table_key(Path("sales_1.csv")) == "sales_1"

    keep, skipped = split_sources((str(cta), str(tmp_path / "notes.txt")), (str(cpa),))
    assert [f.name for f in skipped] == ["Book_shared.com_September2020_CTA.json.gz"]
    assert sorted(f.name for f in keep) == ["Book_own.com_September2020_CTA.json.gz", "notes.txt"]

    cfg = PretrainConfig(data=(str(cta),), exclude=(str(cpa),), seq_len=256).corpus_config()
    docs = collect_docs(cfg)
    text = " ".join(decode_ids(d) for d in docs.tables)
    assert "Kept 3" in text and "Leaked" not in text and "Evaluated" not in text
    assert docs.excluded == [str(cta / "Book_shared.com_September2020_CTA.json.gz")]
    assert "1 data files skipped by --exclude" in corpus_summary(Corpus(cfg, docs))
    kept = PretrainConfig(data=(str(cta),), exclude=(str(cpa),))
    assert PretrainConfig.from_dict(kept.to_dict()).exclude == (str(cpa),)
    with pytest.raises(CorpusError, match="no --data was given, so there is nothing to skip"):
        PretrainConfig(exclude=(str(cpa),)).corpus_config()

    with pytest.raises(CorpusError, match="removes every file of --data"):
        collect_docs(CorpusConfig(data=(str(cpa),), exclude=(str(cta / ".."),)))
    with pytest.raises(CorpusError, match=r"--exclude .*missing: no such file"):
        collect_docs(CorpusConfig(data=(str(cta),), exclude=(str(tmp_path / "missing"),)))


def test_table_documents_cut_cells_at_max_cell_bytes() -> None:
    """--max-cell-bytes reaches the table serializations: long cells keep that many bytes, no more."""
    from aegir.encoding.corpus import table_docs

    long = "abcdefghij" * 20  # 200 bytes
    t = Table([[long, long + "x"], ["1", "2"]], ["desc", "n"])
    for limit in (16, 48, 128):
        ser, _ = table_docs([t], CorpusConfig(seq_len=512, max_cell_bytes=limit))
        text = decode_ids(ser[0])
        assert long[:limit] in text and long[: limit + 1] not in text, limit
    with pytest.raises(CorpusError, match="max_cell_bytes"):
        CorpusConfig(max_cell_bytes=0)
