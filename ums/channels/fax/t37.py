"""ITU-T T.37 / RFC 3192 Internet fax: the TIFF goes by SMTP to a fax gateway.

The gateway's mailbox for a number is ``FAX=+<number>@<gateway domain>``
(RFC 3192); the message carries the document as ``image/tiff;
application=faxbw`` (RFC 3250 simple mode), keeps the delivery's Message-ID so
a gateway can deduplicate a resend, and the SMTP reply decides the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from .. import FAILED, PERMANENT, SENT, TEMPORARY, Outcome
from .render import FaxDocument


@dataclass
class T37Gateway:
    host: str
    port: int
    domain: str
    sender: str
    timeout: float = 30

    @classmethod
    def from_config(cls, section: dict) -> "T37Gateway":
        return cls(section["t37_host"], section["t37_port"], section["t37_domain"],
                   section["t37_sender"], section["t37_timeout"])

    def mailbox(self, number: str) -> str:
        """RFC 3192 address of a number in international form (``+82…``)."""
        return f"FAX={number}@{self.domain}"

    def message(self, number: str, document: FaxDocument, message_id: str, subject: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.mailbox(number)
        message["Subject"] = subject or f"Fax to {number}"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id
        message.set_content(f"Fax document, {document.pages} page(s).\n")
        message.add_attachment(document.path.read_bytes(), maintype="image", subtype="tiff",
                               filename="fax.tif", params={"application": "faxbw"})
        return message

    async def send(self, number: str, document: FaxDocument, message_id: str, subject: str = "") -> Outcome:
        """Hand the fax to the gateway; 2xx sent, 4xx/connection trouble temporary, 5xx permanent."""
        message = self.message(number, document, message_id, subject)
        try:
            errors, reply = await aiosmtplib.send(message, hostname=self.host, port=self.port,
                                                  timeout=self.timeout, start_tls=False, use_tls=False)
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = error.recipients[0]
            return self._refused(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as error:
            return self._refused(error.code, error.message)
        except (aiosmtplib.SMTPException, OSError) as error:
            return Outcome(TEMPORARY, "connect", f"fax gateway {self.host}:{self.port}: {error}",
                           disposition=FAILED, dstchannel=self.domain)
        return Outcome(SENT, reply.split()[0] if reply else "250", reply, pages=document.pages,
                       bytes=document.bytes, dstchannel=self.domain)

    def _refused(self, code: int, text: str) -> Outcome:
        status = TEMPORARY if 400 <= code < 500 else PERMANENT
        return Outcome(status, str(code), text, disposition=FAILED, dstchannel=self.domain)
