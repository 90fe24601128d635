"""Whether a message's From domain is authenticated (DMARC), so that a refusal
it carries can act at once without a reply to prove it.

A refusal that answers no message UMS sent could be forged by anyone (the
``From`` header is free text). It is believed anyway when its From domain
passes DMARC: a valid DKIM signature (dkimpy) or an SPF pass for the
envelope sender and client address (pyspf), with the signing or envelope
domain aligned to the From domain under that domain's published DMARC
policy (authheaders, which also finds the organisational domain from the
public suffix list). With ``[mas] trusted_authserv_id`` set, the topmost
``Authentication-Results`` header of that authserv-id is believed too when
it says ``dmarc=pass`` for the From domain; every other
``Authentication-Results`` header is ignored (anyone can write one).

:meth:`Authenticity.evidence` returns the reason in words, recorded on the
suppression (``dkim=pass d=bank.example aligned``), or None. It looks up
DNS and so blocks: MAS calls it in a thread, before the message waits for
the database. A ``txt`` resolver (name → TXT record text or None) replaces
DNS, for tests and air-gapped sites.
"""

from __future__ import annotations

import logging
from typing import Callable

import authheaders
import authres
import spf
from authheaders.dmarc_lookup import get_org_domain

from ums.inbound import InboundMessage

log = logging.getLogger("ums.mas.authenticity")

#: name → the TXT record's text, or None when there is none
TxtResolver = Callable[[str], "str | None"]


class ResolvedSPF(spf.query):
    """pyspf's check with its TXT lookups answered by a :data:`TxtResolver` (no other record types)."""

    def __init__(self, txt: TxtResolver, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.txt = txt

    def dns(self, name, qtype, cnames=None, ignore_void=False):
        record = self.txt(name) if qtype == "TXT" else None
        return [[record.encode()]] if record else []


class Authenticity:
    def __init__(self, trusted_authserv_id: str = "", txt: TxtResolver | None = None):
        self.trusted_authserv_id = trusted_authserv_id.strip().lower()
        self.txt = txt

    def evidence(self, raw: bytes, message: InboundMessage, ip: str, mail_from: str, helo: str) -> str | None:
        """Why the From domain of ``message`` is authenticated, or None when it is not."""
        domain = message.sender.rpartition("@")[2].lower()
        if not domain:
            return None
        trusted = self.trusted_result(message, domain)
        if trusted:
            return trusted
        try:
            return self.own_check(raw, domain, ip, mail_from, helo)
        except Exception as exc:  # a DNS fault or a malformed signature: not authenticated
            log.info("DMARC check failed", extra={"domain": domain, "error": f"{type(exc).__name__}: {exc}"[:300]})
            return None

    def trusted_result(self, message: InboundMessage, domain: str) -> str | None:
        """``dmarc=pass`` from the topmost Authentication-Results of the trusted authserv-id."""
        if not self.trusted_authserv_id:
            return None
        for value in message.header_values("authentication-results"):
            try:
                header = authres.AuthenticationResultsHeader.parse_value(value)
            except Exception:
                continue
            if (header.authserv_id or "").lower() != self.trusted_authserv_id:
                continue
            for result in header.results:
                if result.method == "dmarc" and result.result == "pass" and header_from(result) == domain:
                    return f"dmarc=pass header.from={domain} by {self.trusted_authserv_id}"
            return None  # only the topmost one of the trusted server counts
        return None

    def own_check(self, raw: bytes, domain: str, ip: str, mail_from: str, helo: str) -> str | None:
        dkim_result = authheaders.check_dkim(raw, dnsfunc=self._dkim_dns) if self.txt else \
            authheaders.check_dkim(raw)
        spf_result = self.spf(ip, mail_from, helo)
        envelope_domain = mail_from.rpartition("@")[2].lower()
        dmarc = authheaders.check_dmarc(raw, spf_result, dkim_result, **({"dnsfunc": self._dmarc_dns}
                                                                          if self.txt else {}))
        if dmarc.result != "pass":
            return None
        if dkim_result.result == "pass" and aligned(domain, dkim_result.header_d):
            return f"dkim=pass d={dkim_result.header_d} aligned"
        if spf_result is not None and spf_result.result == "pass" and aligned(domain, envelope_domain):
            return f"spf=pass smtp.mailfrom={envelope_domain} aligned"
        return None  # a pass MAS cannot attribute to an aligned domain (see org_domain): not believed

    def spf(self, ip: str, mail_from: str, helo: str):
        if not (ip and mail_from):
            return None
        check = ResolvedSPF(self.txt, ip, mail_from, helo) if self.txt else spf.query(ip, mail_from, helo)
        result, _, reason = check.check()
        return authres.SPFAuthenticationResult(result=result, reason=reason, smtp_mailfrom=mail_from, smtp_helo=helo)

    def _dkim_dns(self, name, timeout=5):
        record = self.txt(name.decode() if isinstance(name, bytes) else name)
        return record.encode() if record else None

    def _dmarc_dns(self, name):
        return self.txt(name)


def header_from(result) -> str:
    """The ``header.from`` property of an Authentication-Results result, lower-cased."""
    for prop in result.properties:
        if prop.type == "header" and prop.name == "from":
            return (prop.value or "").lower()
    return ""


def org_domain(domain: str) -> str:
    """The organisational domain (public suffix list). authheaders gives the bare
    top-level label for a name under a suffix the list does not know
    (``bank.example`` → ``example``), which would align every such domain with
    every other: there the last two labels are taken instead."""
    domain = domain.lower().rstrip(".")
    found = get_org_domain(domain)
    return found if "." in found else ".".join(domain.split(".")[-2:])


def aligned(from_domain: str, other: str) -> bool:
    """Relaxed DMARC alignment: the same organisational domain."""
    return bool(other) and org_domain(from_domain) == org_domain(other)
