"""Inbound messages as real gateways, MTAs and customers send them (built, not canned)."""

from __future__ import annotations

import io
import wave
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.audio import MIMEAudio
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid


def tiff(pages: int) -> bytes:
    from PIL import Image

    frames = [Image.new("1", (1728, 200), 1) for _ in range(pages)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:], compression="group4")
    return out.getvalue()


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x00" * int(rate * seconds))
    return out.getvalue()


def text_message(sender: str, to: str, subject: str, body: str, charset: str = "utf-8", **headers) -> bytes:
    msg = MIMEText(body, "plain", charset)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = Header(subject, charset).encode() if charset != "us-ascii" else subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg.as_bytes()


def reply(sender: str, to: str, in_reply_to: str = "", subject: str = "Re: 대출 상담 문의") -> bytes:
    extra = {"In_Reply_To": in_reply_to} if in_reply_to else {}
    return text_message(sender, to, subject, "안녕하세요, 상담 가능한 시간을 알려주세요.\n", **extra)


def euc_kr_refusal(sender: str, to: str, in_reply_to: str = "") -> bytes:
    extra = {"In_Reply_To": in_reply_to} if in_reply_to else {}
    return text_message(sender, to, "광고 수신거부 합니다", "더 이상 보내지 마세요.\n", charset="euc-kr", **extra)


def dsn(recipient: str, original_message_id: str, status: str = "5.1.1", to: str = "bounce@ums.local") -> bytes:
    """An RFC 3464 delivery status notification, as Postfix writes it."""
    action = "failed" if status.startswith("5") else "delayed"
    text = f"""From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: {formatdate()}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

--B0UND
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.
<{recipient}>: host mx.customer.example said: 550 {status} User unknown

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown

--B0UND
Content-Type: text/rfc822-headers

From: news@ums.local
To: {recipient}
Message-ID: {original_message_id}
Subject: monthly news

--B0UND--
"""
    return text.replace("\n", "\r\n").encode()


def qmail_bounce(recipient: str, original_message_id: str) -> bytes:
    """qmail's non-standard bounce (no DSN parts)."""
    body = (
        "Hi. This is the qmail-send program at mx.customer.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"<{recipient}>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n"
        f"Return-Path: <bounce@ums.local>\nMessage-ID: {original_message_id}\nSubject: hello\n\nhello\n"
    )
    msg = MIMEText(body)
    msg["From"] = "MAILER-DAEMON@mx.customer.example"
    msg["To"] = "bounce@ums.local"
    msg["Subject"] = "failure notice"
    msg["Date"] = formatdate()
    return msg.as_bytes()


def gateway_mail(sender: str, to: str, subject: str, text: str, attachment: MIMEBase, filename: str) -> bytes:
    msg = MIMEMultipart()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    msg.attach(MIMEText(text))
    attachment.add_header("Content-Disposition", "attachment", filename=filename)
    msg.attach(attachment)
    return msg.as_bytes()


def fax_mail(to: str, pages: int = 3) -> bytes:
    return gateway_mail("fax-gateway@fax.bank.example", to, f"Fax from +82 2 555 0100 ({pages} pages)",
                        "You have received a fax.\n", MIMEImage(tiff(pages), "tiff"), "fax-0001.tif")


def voice_mail(to: str, seconds: float = 12.5) -> bytes:
    return gateway_mail("voicemail@pbx.bank.example", to, "New voicemail from 01012345678",
                        "Caller: 01012345678\n", MIMEAudio(wav(seconds), "wav"), "msg0001.wav")


def pdf_fax(to: str) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(2):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return gateway_mail("fax-gateway@fax.bank.example", to, "Fax received", "Fax attached.\n",
                        MIMEApplication(out.getvalue(), "pdf"), "fax.pdf")


def nested_multipart(levels: int, sender: str = "deep@customer.example", to: str = "sales@bank.example") -> bytes:
    """A message whose MIME parts nest ``levels`` multiparts deep around one text part
    (so ``levels + 1`` levels of parts in all), as a hostile or broken sender writes it."""
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: nested {levels}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain='customer.example')}\r\nMIME-Version: 1.0\r\n").encode()
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
                       for n in range(levels))
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello\r\n" + closing
