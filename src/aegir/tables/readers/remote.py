"""A table at an http(s) URL (`aegir annotate https://.../data.csv.gz`), downloaded to a temporary file.

The readers read files (some twice, some by seeking), so the response is streamed to a temporary file in
blocks, memory staying bounded, and read there by its kind: the URL path's suffix where it names one
(`.csv.gz`, `.xlsx`, `.parquet`, ...), else the kind sniffed from the first bytes as for standard input
(`stdin.sniff_suffix`: a `/download?id=3` link). The file is named only by that suffix, never by the URL.
Only http and https are fetched (no file:, ftp: or other schemes), with the standard library (urllib; proxies
from the environment as urllib reads them). A download larger than the free space of the temporary folder,
by its Content-Length, is refused before it starts; errors name the URL. Large downloads report their
progress through `progress.reporting`, like reads of large files.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Iterator

from aegir.tables.readers.archive import MEMBER_SUFFIXES, ZIP_SUFFIXES
from aegir.tables.readers.compressed import COMPRESSED_SUFFIXES
from aegir.tables.readers.progress import report
from aegir.tables.readers.stdin import SNIFF_BYTES, sniff_suffix
from aegir.tables.table import TableError

SCHEMES = ("http", "https")
TIMEOUT_S = 60.0  # seconds without a byte from the server
BLOCK = 1 << 20


def is_url(data: object) -> bool:
    """Whether `data` is a string naming an http(s) URL (a Path never is: `Path` folds `//`)."""
    return isinstance(data, str) and urllib.parse.urlsplit(data).scheme.lower() in SCHEMES


def _suffix(url: str) -> str:
    """The table suffix the URL's path names (`.csv.gz`, `.xlsx`), or "" when it names none."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes][-2:]
    if suffixes and suffixes[-1] in (*MEMBER_SUFFIXES, *ZIP_SUFFIXES):
        return suffixes[-1]
    if len(suffixes) == 2 and suffixes[-1] in COMPRESSED_SUFFIXES and suffixes[0] in MEMBER_SUFFIXES:
        return "".join(suffixes)
    return ""


class _HttpOnly(urllib.request.HTTPRedirectHandler):
    """Redirects are followed to http(s) URLs only (urllib would follow one to ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not is_url(newurl):
            raise urllib.error.HTTPError(newurl, code, f"redirected to a URL that is not http(s): {newurl}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnly)


@contextlib.contextmanager
def downloaded(url: str) -> Iterator[Path]:
    """The URL's body as a temporary file named by its kind (see the module docstring), removed afterwards."""
    if not is_url(url):
        raise TableError(f"{url}: not an http(s) URL")
    request = urllib.request.Request(url, headers={"User-Agent": "aegir (table annotation)"})
    try:
        response = _OPENER.open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise TableError(f"{url}: the server answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:  # no host, refused, ...
        raise TableError(f"{url}: cannot download ({getattr(e, 'reason', None) or e})") from None
    with tempfile.TemporaryDirectory(prefix="aegir-url-") as tmp:
        with response:
            path = _save(response, url, Path(tmp))
        yield path


def _save(response, url: str, folder: Path) -> Path:
    """The response's body written to a file in `folder` named by its kind; errors name the URL."""
    try:
        size = max(int(response.headers.get("Content-Length") or 0), 0)
    except ValueError:  # a malformed header: the size is unknown
        size = 0
    free = shutil.disk_usage(folder).free
    if size > free:
        raise TableError(f"{url}: {size / 2**20:,.1f} MiB to download, more than the {free / 2**20:,.1f} MiB "
                         f"free in {tempfile.gettempdir()} (set TMPDIR, or download it yourself)")
    done = 0
    try:
        head = response.read(SNIFF_BYTES)
        path = folder / f"download{_suffix(url) or sniff_suffix(head)}"
        done = len(head)
        with open(path, "wb") as fh:
            fh.write(head)
            while block := response.read(BLOCK):
                fh.write(block)
                done += len(block)
                report(Path(url), done, size)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # the connection dropped, the disk filled
        raise TableError(f"{url}: download broke off after {done:,} bytes ({e})") from None
    if size and done < size:
        raise TableError(f"{url}: download broke off after {done:,} of {size:,} bytes")
    report(Path(url), done, max(size, done))
    return path
