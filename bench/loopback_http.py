"""One HTTP/1.1 request and its answer over a kept-alive loopback connection,
for the benches' load generators (raw bytes, so the client costs little)."""

from __future__ import annotations


async def exchange(reader, writer, raw: bytes) -> int:
    """Send the request ``raw``; read the answer (status line, headers, a
    Content-Length body) and return its status code."""
    writer.write(raw)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return int(status_line.split()[1])
