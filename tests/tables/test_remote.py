"""Tables at http(s) URLs: served by a real HTTP server on localhost, downloaded and read by their kind."""

import gzip
import http.server
import threading
from functools import partial

import pytest

from aegir.tables import TableError
from aegir.tables.readers import read_table_file
from aegir.tables.readers.progress import reporting
from aegir.tables.readers.remote import downloaded, is_url

CSV = "".join(["city,population\n"] + [f"City {i},{1000 + i}\n" for i in range(2000)]).encode()


class Handler(http.server.SimpleHTTPRequestHandler):
    """Files from the served folder, plus a link without a suffix and a response cut short."""

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path.startswith("/download"):  # /download?id=3: the body is gzip-compressed CSV, no name
            body = gzip.compress(CSV)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/to-ftp.csv":  # a redirect away from http(s)
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/t.csv")
            self.end_headers()
        elif self.path == "/badlength.csv":  # a Content-Length that is no number: read to the connection's end
            self.send_response(200)
            self.send_header("Content-Length", "many")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(CSV)
            self.close_connection = True
        elif self.path == "/cut.csv":  # promises more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", str(len(CSV) * 2))
            self.end_headers()
            self.wfile.write(CSV)
        else:
            super().do_GET()


@pytest.fixture
def server(tmp_path):
    (tmp_path / "t.csv").write_bytes(CSV)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(CSV))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _read(url, **kw):
    with downloaded(url) as path:
        return path.name, read_table_file(path, **kw)


def test_urls_download_and_read_by_their_kind(server, tmp_path):
    want = read_table_file(tmp_path / "t.csv")
    for url, name in ((f"{server}/t.csv", "download.csv"), (f"{server}/t.csv.gz", "download.csv.gz"),
                      (f"{server}/download?id=3", "download.csv.gz")):  # no suffix: sniffed from the bytes
        got_name, t = _read(url)
        assert got_name == name and (t.header, t.columns) == (want.header, want.columns), url
    assert is_url(f"{server}/t.csv") and not is_url("t.csv") and not is_url("file:///etc/passwd")


def test_download_errors_name_the_url(server):
    with pytest.raises(TableError, match=r"/missing.csv: the server answered 404"):
        _read(f"{server}/missing.csv")
    with pytest.raises(TableError, match=r"/cut.csv: download broke off after"):
        _read(f"{server}/cut.csv")
    with pytest.raises(TableError, match=r"http://127.0.0.1:9/x.csv: cannot download"):
        _read("http://127.0.0.1:9/x.csv")  # the discard port: nothing listens
    from aegir.annotate_batch import find_tables

    # Kept as strings, in order, once each: Path would fold them to http:/h/a.csv, "no such file".
    assert find_tables(["http://h/a.csv", "https://h/b.xlsx", "http://h/a.csv"]) == ["http://h/a.csv", "https://h/b.xlsx"]
    with pytest.raises(TableError, match=r"ftp://host/x.csv: not an http\(s\) URL"):
        _read("ftp://host/x.csv")
    with pytest.raises(TableError, match=r"/to-ftp.csv: the server answered 302 redirected to a URL that is not http"):
        _read(f"{server}/to-ftp.csv")
    assert _read(f"{server}/badlength.csv")[1].n_rows == 2000


def test_a_big_download_reports_its_progress(server):
    calls = []
    with reporting(lambda *a: calls.append(a), min_bytes=0):
        _read(f"{server}/t.csv")
    assert calls and calls[0][0].name == "t.csv" and calls[-1][1:] == (len(CSV), len(CSV))
