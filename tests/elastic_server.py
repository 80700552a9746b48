"""A real Elasticsearch-API server for tests: noida-db's bundled binary on a free port with its own data folder,
which can be stopped and started again on the same port and data (an outage); and a proxy that answers the first
`_bulk` requests with 429, or slows every `_bulk` down, so clients' back-off and readers' view of a long load are
tested against real HTTP.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def noida_binary() -> Path:
    """The server binary inside the noida-db package, run directly: its `noida-db` wrapper script would leave the
    server running when stopped."""
    return Path(str(files("noida_db").joinpath("noida-db")))


class ElasticsearchServer:
    """noida-db serving only its Elasticsearch API on `port`, its data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")  # noida-db's glibc warning and errors, kept for debugging
        self._process = subprocess.Popen(
            [str(noida_binary()), "start", "--only", "elasticsearch", "--elasticsearch-port", str(self.port),
             "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"noida-db exited with {self._process.returncode}; see {self.data_dir}/server.log")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"noida-db did not answer on {self.url} within {START_TIMEOUT_S:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def __enter__(self) -> ElasticsearchServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextmanager
def elasticsearch_server(data_dir: Path) -> Iterator[ElasticsearchServer]:
    with ElasticsearchServer(data_dir) as server:
        yield server


class BulkProxy:
    """Forwards every request to `upstream`, except that the first `reject_bulk` `_bulk` requests get 429 and the
    others are held `bulk_delay_s` first."""

    def __init__(self, upstream: str, reject_bulk: int = 0, bulk_delay_s: float = 0.0) -> None:
        self.upstream = urlsplit(upstream)
        self.reject_bulk = reject_bulk
        self.bulk_delay_s = bulk_delay_s
        self.rejected = 0
        self.forwarded_bulk = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "/_bulk" in self.path:
                    if proxy._take_rejection():
                        self._answer(429, {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"},
                                     json.dumps({"error": {"type": "es_rejected_execution_exception",
                                                           "reason": "rejected by the test proxy"},
                                                 "status": 429}).encode())
                        return
                    time.sleep(proxy.bulk_delay_s)
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    kept = {k: v for k, v in response.getheaders()
                            if k.lower() not in ("content-length", "connection", "transfer-encoding")}
                    self._answer(response.status, kept, payload)
                finally:
                    upstream.close()

            def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

            def log_message(self, *args) -> None:
                pass

        return Handler

    def _take_rejection(self) -> bool:
        with self._lock:
            if self.rejected < self.reject_bulk:
                self.rejected += 1
                return True
            self.forwarded_bulk += 1
            return False

    def __enter__(self) -> BulkProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
