"""HTTP transport of the sandbox org: cheroot's threaded HTTP/1.1 server over TLS, and the WSGI
adapter that turns a request into ``Request`` for ``SandboxApp`` and its ``Response`` back.

cheroot does the protocol work a real client relies on: chunked request bodies (jsforce streams its
Bulk 2.0 CSV that way), ``Expect: 100-continue``, keep-alive after error answers, pipelining and TLS
through the stdlib ``ssl`` module. This module adds what Salesforce's front end does on top:
``Content-Encoding: gzip`` / ``deflate`` request bodies and a cap on the request size.
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

log = logging.getLogger("crmbridge.sandbox")

# Larger than any request the org accepts (the Bulk 2.0 upload cap is checked by the Bulk handler with
# Salesforce's error); past this the server stops reading instead of holding the body in memory.
MAX_REQUEST_BYTES = 160 * 1024 * 1024
_READ_PIECE = 1024 * 1024


class Headers:
    """Request headers with case-insensitive ``get`` / ``in`` (HTTP field names are case-insensitive)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self._d = {k.lower(): v for k, v in pairs}

    def get(self, name: str, default: Any = None) -> Any:
        return self._d.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()]

    def items(self):
        return self._d.items()


def _headers(environ: dict) -> Headers:
    pairs = [(k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")]
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            pairs.append((name, environ[key]))
    return Headers(pairs)


class BodyError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    pieces, size = [], 0
    while True:
        piece = stream.read(_READ_PIECE)
        if not piece:
            break
        size += len(piece)
        if size > MAX_REQUEST_BYTES:
            raise BodyError(413, "REQUEST_ENTITY_TOO_LARGE", f"The request body is larger than "
                                                             f"{MAX_REQUEST_BYTES // (1024 * 1024)} MB")
        pieces.append(piece)
    return b"".join(pieces)


def _decode(body: bytes, encoding: str) -> bytes:
    """Undo ``Content-Encoding`` (gzip / deflate, as Salesforce accepts), with the same size cap."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity") or not body:
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Encoding {encoding!r} is not supported; "
                                                      "use gzip or deflate")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(body, MAX_REQUEST_BYTES + 1)
        if len(out) > MAX_REQUEST_BYTES or d.unconsumed_tail:
            raise BodyError(413, "REQUEST_ENTITY_TOO_LARGE", "The decompressed request body is too large")
        out += d.flush()
        if not d.eof:
            raise zlib.error("truncated stream")
    except zlib.error as exc:
        raise BodyError(400, "JSON_PARSER_ERROR", f"The request body is not valid {encoding} data: {exc}") from None
    return out


def wsgi_app(app, request_cls, response_cls, *, verbose: bool = False) -> Callable:
    """The WSGI callable serving ``app`` (a ``SandboxApp``); ``verbose`` logs each request to stderr."""

    def application(environ: dict, start_response: Callable) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        headers = _headers(environ)
        try:
            body = _decode(_read_body(environ), headers.get("Content-Encoding") or "")
            req = request_cls(method, path, [p for p in path.split("/") if p],
                              {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING") or "",
                                                            keep_blank_values=True).items()}, headers, body)
            resp = app.handle(req)
        except BodyError as e:
            # (cheroot closes the connection after a 413: the rest of that body was never read)
            resp = response_cls(e.status, json.dumps([{"message": e.message, "errorCode": e.code}]).encode())
        except Exception as exc:  # a bug must answer like Salesforce's 500, not hang the client
            log.exception("sandbox: unhandled error on %s %s", method, path)
            resp = response_cls(500, json.dumps([{"message": f"{type(exc).__name__}: {exc}",
                                                  "errorCode": "UNKNOWN_EXCEPTION"}]).encode())
        out = [(k, v) for k, v in resp.headers.items()]
        if resp.body or resp.status not in (204, 304):
            out.append(("Content-Type", resp.content_type))
        out.append(("Content-Length", str(len(resp.body))))
        if verbose:
            import sys

            print(f"sandbox: {method} {path} -> {resp.status} ({len(resp.body)} bytes)", file=sys.stderr, flush=True)
        start_response(f"{resp.status} {_REASONS.get(resp.status, 'Status')}", out)
        return [resp.body] if resp.body and method != "HEAD" else []

    return application


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 300: "Multiple Choices",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed", 413: "Request Entity Too Large",
            415: "Unsupported Media Type", 500: "Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


def _daemon_pool(server, threads: int):
    """cheroot's thread pool with daemon workers.

    The embedded org runs inside CLI processes that never stop it explicitly; cheroot's workers are
    non-daemon threads, which would keep such a process alive after its work is done. The override of
    ``_spawn_worker`` is pinned by tests/sandbox/test_http.py::test_process_exits_with_a_running_sandbox.
    """
    from cheroot.workers import threadpool

    class DaemonPool(threadpool.ThreadPool):
        def _spawn_worker(self):
            worker = threadpool.WorkerThread(self.server)
            worker.name = f"sandbox-http {worker.name}"
            worker.daemon = True
            worker.start()
            return worker

    return DaemonPool(server, min=threads, max=threads)


def make_server(host: str, port: int, application: Callable, cert: str, key: str, *, threads: int = 16):
    """A bound (not yet serving) cheroot server with TLS; ``bind_addr`` holds the real port."""
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    server = wsgi.Server((host, port), application, numthreads=threads, request_queue_size=128,
                         server_name="sandbox.crmbridge", timeout=60, shutdown_timeout=2)
    server.requests = _daemon_pool(server, threads)
    server.ssl_adapter = BuiltinSSLAdapter(cert, key)
    server.max_request_body_size = MAX_REQUEST_BYTES
    server.prepare()
    return server
