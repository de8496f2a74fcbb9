"""A TCP proxy on 127.0.0.1 that adds a fixed latency to every HTTP request it forwards.

    python benchmarks/latency_proxy.py --listen 9001 --target 9000 --delay-ms 20 \
        [--log requests.log] [--reply-bytes-per-s 1000000]

This kernel has no `tc netem`, so object-store latency is added here: on each
connection, the first bytes of a request (client data arriving after the
server's last reply) wait `--delay-ms` before they are forwarded. Every request
then costs at least that long, as a round trip to a remote object store does,
while requests on separate connections wait in parallel, as they do there.
Replies pass through at once (or at `--reply-bytes-per-s`, a slow link). With `--log`,
each request's line, Range and User-Agent headers are appended to a file as it starts
(`GET /bucket/key bytes=0-99 agent=...`): how the tests count what a loader asked the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re

CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                before_write: object = None) -> None:
    try:
        while data := await reader.read(CHUNK):
            if callable(before_write):
                await before_write(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


HEADER = re.compile(rb"^(range|user-agent):[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def _request_line(data: bytes) -> str:
    """`METHOD PATH [bytes=A-B] [agent=USER-AGENT]` of a request that starts with `data`."""
    words = data.split(b"\r\n", 1)[0].split(b" ")[:2]
    headers = {name.lower(): value for name, value in HEADER.findall(data)}
    if b"range" in headers:
        words.append(headers[b"range"])
    if b"user-agent" in headers:
        words.append(b"agent=" + headers[b"user-agent"].replace(b" ", b"_"))
    return b" ".join(words).decode("latin-1")


class Options:
    def __init__(self, delay: float, log: str | None, rate: float | None) -> None:
        self.delay, self.log, self.rate = delay, log, rate

    def record(self, data: bytes) -> None:
        if self.log is not None:
            with open(self.log, "a") as out:
                out.write(_request_line(data) + "\n")


async def _serve(target: int, options: Options, client_reader: asyncio.StreamReader,
                 client_writer: asyncio.StreamWriter) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    request_starts = [True]  # the next client bytes begin a new request

    async def delay_request(data: bytes) -> None:
        if request_starts[0]:
            request_starts[0] = False
            options.record(data)
            await asyncio.sleep(options.delay)

    async def replied(data: bytes) -> None:
        request_starts[0] = True
        if options.rate:  # a slow link: this chunk's share of a second
            await asyncio.sleep(len(data) / options.rate)

    await asyncio.gather(_pipe(client_reader, server_writer, delay_request),
                         _pipe(server_reader, client_writer, replied))


async def main(listen: int, target: int, delay_ms: float, log: str | None = None,
               rate: float | None = None) -> None:
    options = Options(delay_ms / 1000, log, rate)
    server = await asyncio.start_server(
        lambda r, w: _serve(target, options, r, w), "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--log", help="append each request's line and Range header to this file")
    ap.add_argument("--reply-bytes-per-s", type=float, help="pass replies at this rate")
    args = ap.parse_args()
    asyncio.run(main(args.listen, args.target, args.delay_ms, args.log,
                     args.reply_bytes_per_s))
