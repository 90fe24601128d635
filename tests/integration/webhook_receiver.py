"""A webhook receiver on loopback for the alert tests (http.server in a
thread), and the check a receiver makes of an alert's signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "whsec-test-3f9a2c"


class Receiver:
    """A webhook endpoint on loopback: keeps every POST; answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": self.headers, "body": body, "path": self.path})
                failing = len(receiver.received) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ums"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def events(self, event: str) -> list[dict]:
        return [r for r in self.received if json.loads(r["body"])["event"] == event]


def signature_is_valid(request: dict, body: bytes | None = None, secret: str = SECRET) -> bool:
    """What a receiver does: HMAC-SHA256 over "<timestamp>.<raw body>", compared in constant time."""
    stamp = request["headers"]["X-UMS-Timestamp"]
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + (request["body"] if body is None else body),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", request["headers"]["X-UMS-Signature"])
