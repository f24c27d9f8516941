"""Compressed CSV/TSV files (gzip, bzip2, xz, zstd) read as the same table as the plain file, as a stream."""

import bz2
import gzip
import lzma

import pytest
import zstandard

from aegir.tables import TableError
from aegir.tables.readers import read_table_file
from aegir.tables.readers.compressed import compression, table_suffix

OPENERS = {"gzip": (gzip.compress, ".gz"), "bzip2": (bz2.compress, ".bz2"), "xz": (lzma.compress, ".xz"),
           "zstd": (zstandard.ZstdCompressor().compress, ".zst")}


def _text(n=3000):
    cities = ["Zürich", "Genève", "Málaga", "Köln", "Besançon", "A Coruña", "Nîmes"]
    rows = ["id;city;price", *(f"{i};{cities[i % 7]};{i * 0.25:.2f}" for i in range(n))]
    return ("\n".join(rows) + "\n").encode("cp1252")  # not UTF-8: the encoding is detected after decompression


@pytest.mark.parametrize("how", sorted(OPENERS))
def test_compressed_files_read_like_the_plain_file(tmp_path, how):
    compress, suffix = OPENERS[how]
    plain = tmp_path / "t.csv"
    plain.write_bytes(_text())
    packed = tmp_path / f"t.csv{suffix}"
    packed.write_bytes(compress(_text()))
    assert compression(packed) == how and compression(plain) is None
    for kw in ({}, {"max_rows": 50}, {"max_rows": 50, "spread": True}):
        a, b = read_table_file(plain, **kw), read_table_file(packed, **kw)
        assert (a.header, a.columns) == (b.header, b.columns)
        assert b.meta["rows_total"] == 3000 and b.meta["compression"] == how
        assert (b.meta["encoding"], b.meta["delimiter"]) == (a.meta["encoding"], ";")
    # Detected from the decompressed bytes (as for the plain file above); given, it is used as given.
    given = read_table_file(packed, encoding="cp1252")
    assert set(given.columns[1]) == {"Zürich", "Genève", "Málaga", "Köln", "Besançon", "A Coruña", "Nîmes"}


def test_recognised_by_content_and_the_inner_suffix_names_the_format(tmp_path):
    tsv = b"a\tb\n1,5\t2\n3,5\t4\n"
    odd = tmp_path / "export.csv"  # gzip under a plain name
    odd.write_bytes(gzip.compress(tsv))
    assert read_table_file(odd, header=True).columns == [["1,5", "3,5"], ["2", "4"]]  # the sniffer finds the tab
    named = tmp_path / "export.tab.gz"
    named.write_bytes(gzip.compress(b"a\tb\n1\t2\n"))
    assert table_suffix(named) == ".tab" and table_suffix(tmp_path / "v1.2.csv") == ".csv"
    assert read_table_file(named, header=True).meta["delimiter"] == "\t"
    text = tmp_path / "bz.csv"  # text that happens to start like bzip2's magic is text
    text.write_text("BZh9,x\nBZh8,y\nBZh7,z\n")
    assert compression(text) is None and read_table_file(text, header=False).n_rows == 3


def test_damaged_compressed_files_name_the_file(tmp_path):
    whole = gzip.compress(_text(150_000))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) * 3 // 4])  # a download cut short (past the first MiB of text)
    with pytest.raises(TableError, match=r"cut.csv.gz, near line \d+: cannot decompress \(gzip: "):
        read_table_file(cut)
    bad = tmp_path / "bad.csv.xz"
    bad.write_bytes(lzma.compress(b"a,b\n1,2\n")[:12] + b"\x00" * 50)
    with pytest.raises(TableError, match=r"bad.csv.xz: cannot decompress \(xz: "):
        read_table_file(bad)
    binary = tmp_path / "blob.csv.gz"
    binary.write_bytes(gzip.compress(bytes(range(256)) * 20))
    with pytest.raises(TableError, match="looks like a binary file"):
        read_table_file(binary)


def _zstd_frames(data: bytes, parts: int) -> bytes:
    """`data` as `parts` zstd frames one after another, as `zstd` writes for concatenated input."""
    step = -(-len(data) // parts)
    return b"".join(zstandard.ZstdCompressor().compress(data[i:i + step]) for i in range(0, len(data), step))


def test_zstd_reads_every_frame_and_refuses_a_truncated_one(tmp_path):
    text = _text()
    multi = tmp_path / "t.csv.zst"
    multi.write_bytes(_zstd_frames(text, 3))  # zstandard's own readers stop after the first frame
    plain = tmp_path / "t.csv"
    plain.write_bytes(text)
    a, b = read_table_file(plain), read_table_file(multi)
    assert b.meta["rows_total"] == 3000 and (a.header, a.columns) == (b.header, b.columns)
    whole = _zstd_frames(_text(150_000), 2)
    cut = tmp_path / "cut.csv.zst"
    cut.write_bytes(whole[:-100])  # the last frame loses its end: zstandard alone returns the rows it has
    with pytest.raises(TableError, match=r"cut.csv.zst, near line \d+: cannot decompress \(zstd: .*truncated"):
        read_table_file(cut)


def test_a_bomb_is_read_in_bounded_steps(tmp_path):
    """A zstd file of 200 MB of one byte is ~6 KB: its head is sniffed within a bound, and each read of it
    decompresses a bounded step (the raw stream never hands back more than ~FEED x 32 KB at once)."""
    from aegir.tables.readers.compressed import ZstdFile
    from aegir.tables.readers.stdin import SNIFF_BYTES, sniff_suffix

    packed = zstandard.ZstdCompressor(level=19).compress(b"a" * 200_000_000)
    assert len(packed) < 10_000
    assert sniff_suffix(packed[:SNIFF_BYTES]) == ".csv.zst"
    bomb = tmp_path / "bomb.zst"
    bomb.write_bytes(packed)
    raw = ZstdFile(open(bomb, "rb"))
    try:
        assert raw._decompress() and 0 < len(raw._out) <= ZstdFile.FEED * 40_000
    finally:
        raw.close()
