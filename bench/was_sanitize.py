"""How fast WAS makes an inbound HTML email safe to show.

Prints messages per second for the nh3-based sanitiser on a typical
newsletter-sized HTML body, next to the time to merely parse the same MIME
message with the standard library (the reference measured in the same run).
"""

from __future__ import annotations

import time

from was import mail

BLOCK = """<table width="600"><tr><td><h2 onclick="x()">Offer {n}</h2>
<p style="color:red">Dear customer, <a href="https://bank.example/o/{n}">see the offer</a>
<a href="javascript:alert(1)">or this</a></p><img src="https://cdn.example/{n}.png" onerror="alert(1)">
<script>track({n})</script></td></tr></table>"""
HTML = "<html><body>" + "".join(BLOCK.format(n=n) for n in range(40)) + "</body></html>"
RAW = ("From: a@example.com\r\nTo: b@example.com\r\nSubject: offer\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML).encode()


def rate(work, seconds: float = 1.5) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work()
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parse_only = rate(lambda: mail.parse(RAW).get_body(preferencelist=("html",)).get_content())
    sanitised = rate(lambda: mail.body_html(mail.parse(RAW)))
    print(f"body size: {len(HTML)} bytes")
    print(f"parse only (reference): {parse_only:,.0f} messages/s")
    print(f"parse + sanitise:       {sanitised:,.0f} messages/s")
    print(f"sanitising costs {parse_only / sanitised:.2f}x the parse-only time")


if __name__ == "__main__":
    main()
