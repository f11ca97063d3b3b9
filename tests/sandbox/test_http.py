"""HTTP/1.1 transport of the sandbox (issue 15 point 1), spoken byte by byte with http.client and raw TLS
sockets: chunked request bodies, Expect: 100-continue, keep-alive after error answers, gzip/deflate
request bodies, the request size cap."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import ssl
import time
import zlib
from urllib.parse import urlsplit

import pytest


def _ctx(handle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=handle.ca_bundle)


def _conn(handle) -> http.client.HTTPSConnection:
    u = urlsplit(handle.instance_url)
    return http.client.HTTPSConnection(u.hostname, u.port, context=_ctx(handle), timeout=30)


def _chunks(data: bytes, size: int = 7):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_chunked_json_body_creates_record(sandbox, uid):
    token = sandbox.new_session()
    c = _conn(sandbox)
    body = json.dumps({"Name": "Chunked " + uid, "Legacy_Id__c": "CH" + uid}).encode()
    c.request("POST", "/services/data/v62.0/sobjects/Account", body=_chunks(body), encode_chunked=True,
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    created = json.loads(r.read())
    assert r.status == 201 and created["success"] is True
    # same connection, a GET for what was just written
    c.request("GET", f"/services/data/v62.0/sobjects/Account/{created['id']}", headers={"Authorization":
                                                                                          f"Bearer {token}"})
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["Name"] == "Chunked " + uid


def _raw_tls(handle) -> ssl.SSLSocket:
    u = urlsplit(handle.instance_url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    return _ctx(handle).wrap_socket(sock, server_hostname=u.hostname)


def _read_head(sock) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(1)
        if not piece:
            break
        buf += piece
    return buf


def _send_head(handle, framing: str) -> ssl.SSLSocket:
    """A raw TLS connection that has sent the head of an Account create with ``framing`` and Expect."""
    s = _raw_tls(handle)
    s.sendall((f"POST /services/data/v62.0/sobjects/Account HTTP/1.1\r\nHost: {urlsplit(handle.instance_url).netloc}"
               f"\r\nAuthorization: Bearer {handle.new_session()}\r\nContent-Type: application/json\r\n"
               f"{framing}\r\nExpect: 100-continue\r\n\r\n").encode())
    return s


def test_expect_100_continue_then_body(sandbox, uid):
    body = json.dumps({"Name": "Expect " + uid}).encode()
    s = _send_head(sandbox, f"Content-Length: {len(body)}")
    interim = _read_head(s)
    assert interim.startswith(b"HTTP/1.1 100 Continue"), interim  # before a single body byte was sent
    s.sendall(body)
    final = _read_head(s)
    assert final.startswith(b"HTTP/1.1 201"), final
    s.close()


def test_expect_100_continue_with_chunked_body(sandbox, uid):
    body = json.dumps({"Name": "ExpectChunked " + uid}).encode()
    s = _send_head(sandbox, "Transfer-Encoding: chunked")
    assert _read_head(s).startswith(b"HTTP/1.1 100 Continue")
    for piece in _chunks(body, 5):
        s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    s.sendall(b"0\r\n\r\n")
    assert _read_head(s).startswith(b"HTTP/1.1 201")
    s.close()


def test_keep_alive_after_error_answers(sandbox):
    token = sandbox.new_session()
    c = _conn(sandbox)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    c.request("GET", "/services/data/v62.0/sobjects/Account/001000000000000AAA", headers=auth)
    r = c.getresponse()
    assert r.status == 404 and json.loads(r.read())[0]["errorCode"] == "NOT_FOUND"
    sock = c.sock
    c.request("POST", "/services/data/v62.0/sobjects/Account", body=b"{not json", headers=auth)
    r = c.getresponse()
    assert r.status == 400 and json.loads(r.read())[0]["errorCode"] == "JSON_PARSER_ERROR"
    c.request("GET", "/services/data/v62.0/limits", headers={"Authorization": "Bearer nope"})
    r = c.getresponse()
    assert r.status == 401 and r.read()
    c.request("GET", "/services/data/v62.0/limits", headers=auth)
    r = c.getresponse()
    assert r.status == 200 and "DailyApiRequests" in json.loads(r.read())
    assert c.sock is sock  # every answer above came over the one connection


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_request_body(sandbox, uid, encoding):
    token = sandbox.new_session()
    raw = json.dumps({"Name": f"Zip {encoding} {uid}"}).encode()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    c = _conn(sandbox)
    c.request("POST", "/services/data/v62.0/sobjects/Account", body=body,
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Content-Encoding": encoding})
    r = c.getresponse()
    rid = json.loads(r.read())["id"]
    assert r.status == 201
    c.request("GET", f"/services/data/v62.0/sobjects/Account/{rid}?fields=Name",
              headers={"Authorization": f"Bearer {token}"})
    assert json.loads(c.getresponse().read())["Name"] == f"Zip {encoding} {uid}"


def test_bad_gzip_and_unknown_encoding_are_refused(sandbox):
    token = sandbox.new_session()
    c = _conn(sandbox)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Content-Encoding": "gzip"}
    c.request("POST", "/services/data/v62.0/sobjects/Account", body=b"\x1f\x8bnot really gzip", headers=headers)
    r = c.getresponse()
    assert r.status == 400 and "not valid gzip" in json.loads(r.read())[0]["message"]
    c.request("POST", "/services/data/v62.0/sobjects/Account", body=b"xx",
              headers={**headers, "Content-Encoding": "br"})
    r = c.getresponse()
    assert r.status == 415 and r.read()


def _wait_job(c, token, job_id):
    for _ in range(200):
        c.request("GET", f"/services/data/v62.0/jobs/ingest/{job_id}", headers={"Authorization": f"Bearer {token}"})
        info = json.loads(c.getresponse().read())
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {info}")


def test_bulk_upload_chunked_and_gzipped(sandbox, uid):
    """jsforce streams the Bulk 2.0 CSV with Transfer-Encoding: chunked; here also gzip-compressed."""
    token = sandbox.new_session()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    c = _conn(sandbox)
    c.request("POST", "/services/data/v62.0/jobs/ingest", headers=auth,
              body=json.dumps({"object": "Account", "operation": "insert", "lineEnding": "LF"}))
    job = json.loads(c.getresponse().read())
    csv_text = "Name,Legacy_Id__c\n" + "".join(f"Stream {n} {uid},ST{n}{uid}\n" for n in range(500))
    c.request("PUT", "/" + job["contentUrl"], body=_chunks(gzip.compress(csv_text.encode()), 1000),
              encode_chunked=True, headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv",
                                            "Content-Encoding": "gzip", "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    r.read()
    assert r.status == 201
    c.request("PATCH", f"/services/data/v62.0/jobs/ingest/{job['id']}", headers=auth,
              body=json.dumps({"state": "UploadComplete"}))
    assert c.getresponse().read()
    info = _wait_job(c, token, job["id"])
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 500, 0)


def test_process_exits_with_a_running_sandbox(tmp_path):
    """CLI commands start an embedded org and never stop it: the process must still end when its work is."""
    import subprocess
    import sys

    code = ("from crmbridge.sandbox.server import start_sandbox\n"
            f"h = start_sandbox({str(tmp_path / 'org.db')!r})\n"
            "s = h.session(); s.headers['Authorization'] = 'Bearer ' + h.new_session()\n"
            "assert s.get(h.instance_url + '/services/data/v62.0/limits').status_code == 200\n"
            "print('served')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "served", p.stderr[-1500:]


def test_request_over_the_cap_is_413_and_the_server_stays_up(sandbox, monkeypatch):
    from crmbridge.sandbox import wsgi

    monkeypatch.setattr(wsgi, "MAX_REQUEST_BYTES", 2 * 1024 * 1024)  # the real cap is 160 MB
    token = sandbox.new_session()
    c = _conn(sandbox)
    # one byte over: the server reads the whole body before answering, so the answer is never lost to a reset
    c.request("POST", "/services/data/v62.0/sobjects/Account", body=b"x" * (2 * 1024 * 1024 + 1),
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 413 and json.loads(r.read())[0]["errorCode"] == "REQUEST_ENTITY_TOO_LARGE"
    c2 = _conn(sandbox)
    c2.request("GET", "/services/data/v62.0/limits", headers={"Authorization": f"Bearer {token}"})
    assert c2.getresponse().status == 200
