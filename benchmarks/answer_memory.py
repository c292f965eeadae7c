"""Peak memory of one API request whose answer is 50 MB, with and without the answer cap.

A server process streams a 50 MB JSON string (chunked, no ``Content-Length``) on 127.0.0.1;
each measurement runs in a fresh Python process that sends one request through the SDK's
transport and reports its peak RSS (``ru_maxrss``) and that of a process that only imported
the SDK. ``capped`` uses the default cap (16 MiB); ``uncapped`` sets the cap above the answer,
as the code read answers before the cap existed.

Target: with the cap, the request adds at most 48 MB to the peak RSS (three times the cap).

    python benchmarks/answer_memory.py
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time

ANSWER = 50 * 1000 * 1000  # bytes
TARGET_MB = 48.0


def serve(port: int) -> None:
    from aiohttp import web

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b'"' + b"x" * (65536 - 1)
        sent = 0
        try:
            while sent < ANSWER:
                await response.write(chunk)
                sent += len(chunk)
        except ConnectionError:  # the capped client hung up: expected
            pass
        return response

    app = web.Application()
    app.router.add_post("/huge", huge)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def measure(mode: str, port: int) -> None:
    import aiohttp

    from kling_async import ResponseFormatError
    from kling_async._http._auth import ApiKeyAuth
    from kling_async._http._transport import MAX_ANSWER_BYTES, Transport

    async def main() -> str:
        async with aiohttp.ClientSession() as session:
            cap = {"capped": MAX_ANSWER_BYTES, "uncapped": 2 * ANSWER, "none": 0}[mode]
            transport = Transport(
                session, f"http://127.0.0.1:{port}", ApiKeyAuth("k"), max_answer_bytes=cap
            )
            if mode == "none":
                return "not sent"
            try:
                response = await transport.request("POST", "/huge")
            except ResponseFormatError as exc:
                return f"ResponseFormatError: {exc}"
            return f"read {len(response.raw)} bytes"

    outcome = asyncio.run(main())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, outcome, sep="\t")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )


def run() -> int:
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        _wait_listening(port)
        rows = {}
        for mode in ("none", "capped", "uncapped"):
            peak, outcome = _child("--measure", mode, str(port)).stdout.strip().split("\t", 1)
            rows[mode] = (float(peak), outcome)
    finally:
        server.terminate()
        server.wait()
    base = rows["none"][0]
    print(
        f"answer {ANSWER / 1e6:.0f} MB, chunked; peak RSS of a process that only imports: "
        f"{base:.1f} MB"
    )
    print("| cap | peak RSS MB | added by the request MB | outcome |")
    print("|---|---|---|---|")
    for mode in ("capped", "uncapped"):
        peak, outcome = rows[mode]
        print(f"| {mode} | {peak:.1f} | {peak - base:.1f} | {outcome[:90]} |")
    added = rows["capped"][0] - base
    verdict = "PASS" if added <= TARGET_MB else "FAIL"
    print(f"target: capped request adds ≤ {TARGET_MB:.0f} MB: {added:.1f} MB, {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--measure"]:
        measure(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(run())
