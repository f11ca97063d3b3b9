"""Benchmark: the sandbox org's HTTP transport. Prints small-call latency over one keep-alive connection,
throughput with parallel clients, and the time to upload a Bulk 2.0 CSV sent with Content-Length,
chunked, and chunked + gzip.

    .venv/bin/python benchmarks/sandbox_http.py [--calls 500] [--clients 4] [--mb 20]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import threading
import time
from pathlib import Path


def _calls(handle, token: str, n: int) -> None:
    s = handle.session()
    s.headers["Authorization"] = f"Bearer {token}"
    url = handle.instance_url + "/services/data/v62.0/limits"
    for _ in range(n):
        s.get(url).raise_for_status()


def _upload(handle, token: str, data: bytes, mode: str) -> float:
    s = handle.session()
    s.headers["Authorization"] = f"Bearer {token}"
    job = s.post(handle.instance_url + "/services/data/v62.0/jobs/ingest",
                 json={"object": "Account", "operation": "insert"}).json()
    headers = {"Content-Type": "text/csv"}
    body: object = data
    if mode == "chunked":
        body = (data[i:i + 65536] for i in range(0, len(data), 65536))
    elif mode == "chunked+gzip":
        packed = gzip.compress(data, 1)
        body = (packed[i:i + 65536] for i in range(0, len(packed), 65536))
        headers["Content-Encoding"] = "gzip"
    started = time.perf_counter()
    r = s.put(f"{handle.instance_url}/{job['contentUrl']}", data=body, headers=headers)
    elapsed = time.perf_counter() - started
    assert r.status_code == 201, r.text
    s.patch(f"{handle.instance_url}/services/data/v62.0/jobs/ingest/{job['id']}", json={"state": "Aborted"})
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    from crmbridge.sandbox.server import start_sandbox

    with tempfile.TemporaryDirectory() as tmp:
        h = start_sandbox(Path(tmp) / "bench.db")
        try:
            token = h.new_session()
            _calls(h, token, 20)  # warm up
            started = time.perf_counter()
            _calls(h, token, args.calls)
            one = time.perf_counter() - started
            print(f"GET /limits, 1 keep-alive client: {args.calls / one:,.0f} calls/s "
                  f"({one / args.calls * 1000:.2f} ms per call)")
            threads = [threading.Thread(target=_calls, args=(h, token, args.calls // args.clients))
                       for _ in range(args.clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            many = time.perf_counter() - started
            print(f"GET /limits, {args.clients} parallel clients: {args.calls / many:,.0f} calls/s")
            row = b"Company 0000000 Bench,BENCH0000000,Manufacturing,1234,12345.5,Shanghai\n"
            data = b"Name,Legacy_Id__c,Industry,NumberOfEmployees,AnnualRevenue,BillingCity\n" + row * (
                args.mb * 1024 * 1024 // len(row))
            for mode in ("content-length", "chunked", "chunked+gzip"):
                secs = _upload(h, token, data, mode)
                print(f"Bulk 2.0 upload of {len(data) / 1024 / 1024:.0f} MiB, {mode}: {secs:.2f} s "
                      f"({len(data) / 1024 / 1024 / secs:,.0f} MiB/s)")
        finally:
            h.stop()


if __name__ == "__main__":
    main()
