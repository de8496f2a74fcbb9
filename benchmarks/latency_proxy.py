"""A TCP proxy on 127.0.0.1 that adds a fixed latency to every HTTP request it forwards.

    python benchmarks/latency_proxy.py --listen 9001 --target 9000 --delay-ms 20

This kernel has no `tc netem`, so object-store latency is added here: on each
connection, the first bytes of a request (client data arriving after the
server's last reply) wait `--delay-ms` before they are forwarded. Every request
then costs at least that long, as a round trip to a remote object store does,
while requests on separate connections wait in parallel, as they do there.
Replies pass through at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                before_write: object = None) -> None:
    try:
        while data := await reader.read(CHUNK):
            if callable(before_write):
                await before_write()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(target: int, delay: float, client_reader: asyncio.StreamReader,
                 client_writer: asyncio.StreamWriter) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    request_starts = [True]  # the next client bytes begin a new request

    async def delay_request() -> None:
        if request_starts[0]:
            request_starts[0] = False
            await asyncio.sleep(delay)

    async def replied() -> None:
        request_starts[0] = True

    await asyncio.gather(_pipe(client_reader, server_writer, delay_request),
                         _pipe(server_reader, client_writer, replied))


async def main(listen: int, target: int, delay_ms: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(target, delay_ms / 1000, r, w), "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    args = ap.parse_args()
    asyncio.run(main(args.listen, args.target, args.delay_ms))
