"""The relay PASS sends through in the acceptance tests: a real SMTP server
(aiosmtpd's threaded Controller, on loopback) that keeps every message, and
a polling wait for the tests that drive the `ums` command."""

from __future__ import annotations

import email
import email.message
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from tests.helpers import free_port


class Recorder:
    """Keeps (recipient, data) of everything the relay accepts."""

    def __init__(self):
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append((rcpt, envelope.original_content or envelope.content))
        return "250 2.0.0 queued"

    def messages(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.received)

    def recipients(self) -> list[str]:
        return [rcpt for rcpt, _ in self.messages()]

    def messages_to(self, address: str) -> list[email.message.Message]:
        return [email.message_from_bytes(data) for rcpt, data in self.messages() if rcpt == address]


@pytest.fixture
def sink():
    """``(port, recorder)`` of a running relay, stopped after the test."""
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, recorder
    controller.stop()


def wait_for(check, timeout: float = 30, interval: float = 0.2):
    """``check()``'s first truthy result; the test fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)
    return result
