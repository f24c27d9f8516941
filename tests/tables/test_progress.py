"""Progress of reading a large file: `reporting` hears how far the streaming readers are, on disk."""

import bz2
import gzip
import io
import json

import zstandard
from rich.console import Console
from rich.progress import Progress

from aegir.tables.readers import read_table_file
from aegir.tables.readers.progress import _Counting, reporting, task_reporter


def _files(tmp_path):
    text = "".join(f"{i},name {i},{i * 0.5}\n" for i in range(200_000)).encode()
    jsonl = "".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(100_000)).encode()
    files = {"t.csv": text, "t.csv.gz": gzip.compress(text), "t.tsv.bz2": bz2.compress(text.replace(b",", b"\t")),
             "t.csv.zst": zstandard.ZstdCompressor().compress(text), "t.jsonl": jsonl, "t.jsonl.gz": gzip.compress(jsonl)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / n for n in files]


def test_streamed_reads_report_the_bytes_read_of_the_file_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(_Counting, "STEP", 1 << 16)
    for path in _files(tmp_path):
        calls = []
        with reporting(lambda *a: calls.append(a), min_bytes=0):
            t = read_table_file(path, max_rows=500, spread=True)
        size = path.stat().st_size
        assert calls and all(p == path and s == size for p, _, s in calls), path
        done = [d for _, d, _ in calls]
        # Each open of the file counts from 0 again (the CSV reader reads its head first, then every row): the
        # last pass rises step by step to the file's size.
        last = max((i for i in range(1, len(done)) if done[i] < done[i - 1]), default=0)
        assert done[last:] == sorted(done[last:]) and done[-1] == size, (path, done)
        assert len(done) - last > 2 or size < 3 << 16, (path, done)
        assert t.meta["rows_total"] == read_table_file(path, max_rows=500, spread=True).meta["rows_total"]


def test_small_files_and_reads_outside_reporting_are_not_counted(tmp_path):
    path = _files(tmp_path)[0]
    calls = []
    with reporting(lambda *a: calls.append(a)):  # the default threshold: 64 MiB
        read_table_file(path)
    assert calls == []
    from aegir.tables.readers.compressed import open_raw

    with open_raw(path, None) as fh:
        assert isinstance(fh, io.BufferedReader) and not isinstance(fh.raw, _Counting)


def test_task_reporter_shows_a_task_per_file_until_it_is_read(tmp_path):
    bar = Progress(console=Console(file=io.StringIO()))
    report = task_reporter(bar)
    report(tmp_path / "big.csv", 10, 100)
    (task,) = bar.tasks
    assert (task.description, task.total, task.completed) == ("reading big.csv", 100, 10)
    report(tmp_path / "big.csv", 60, 100)
    assert bar.tasks[0].completed == 60
    report(tmp_path / "big.csv", 100, 100)
    assert bar.tasks == []
