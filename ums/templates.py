"""Rendering message templates (Jinja2) and building email bytes fast.

Building a message with the standard library's MIME classes costs about 2 ms;
a campaign sends the same structure to everyone. So :class:`EmailSkeleton`
renders the parts that are the same for every recipient once (From, MIME
headers, boundary) and per recipient only fills in the Jinja2-rendered
subject and bodies, base64-encoded straight into a bytes template::

    skeleton = EmailSkeleton(template_row, kind, from_name, from_address)
    data = skeleton.build(message_id, to, variables, unsubscribe_mailto, unsubscribe_url)

Advertising (see :mod:`ums.advertising`) gets the ``(광고)`` subject label and
the sender/free-refusal footer in both bodies.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.utils import encode_rfc2231, formataddr, formatdate

from jinja2 import Environment, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from . import advertising
from .errors import UmsError

_TEXT_ENV = SandboxedEnvironment(autoescape=False)
_HTML_ENV = SandboxedEnvironment(autoescape=select_autoescape(default=True, default_for_string=True))


class TemplateRenderError(UmsError):
    """Template {name!r} cannot be rendered: {reason}."""


def environment(html: bool = False) -> Environment:
    """The sandboxed Jinja2 environment templates are rendered in (HTML autoescaped)."""
    return _HTML_ENV if html else _TEXT_ENV


def compile_text(source: str | None, html: bool = False):
    return environment(html).from_string(source or "")


_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_JINJA_MARKUP = ("{{", "{%", "{#", "}}", "%}", "#}")


class _Substitution:
    """A template made only of text and ``{{ field }}`` placeholders, rendered
    by joining pieces: the same output as Jinja2 (missing fields render empty,
    HTML values are escaped) at a fraction of the cost of a Jinja2 context per
    recipient — campaign templates are nearly always of this kind."""

    def __init__(self, pieces: list[str], fields: list[str], html: bool):
        self.pieces, self.fields, self.html = pieces, fields, html

    @classmethod
    def parse(cls, source: str, html: bool) -> "_Substitution | None":
        parts = _FIELD.split(source)
        texts, fields = parts[0::2], parts[1::2]
        if any(marker in text for text in texts for marker in _JINJA_MARKUP):
            return None
        return cls(texts, fields, html)

    def render(self, variables: dict) -> str:
        pieces, out = self.pieces, [self.pieces[0]]
        for index, field in enumerate(self.fields, 1):
            value = variables.get(field)
            if value is not None or field in variables:
                out.append(str(escape(value)) if self.html else str(value))
            out.append(pieces[index])
        return "".join(out)


def compile_fast(source: str | None, html: bool = False):
    """A compiled template with ``render(variables) -> str``: the cheap
    substitution form when the source allows it, else Jinja2 (sandboxed)."""
    return _Substitution.parse(source or "", html) or compile_text(source, html)


def _encoded_word(text: str) -> str:
    """RFC 2047 encoding of a header value (UTF-8, base64), in words of at most
    45 bytes that never split a character."""
    if text.isascii():
        return text
    data, words, start = text.encode("utf-8"), [], 0
    while start < len(data):
        end = min(start + 45, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:   # inside a character: step back
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return "\r\n ".join(words)


def _b64_body(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


_date_cache: list = [0, ""]


def _date_header(date: datetime | None = None) -> str:
    """RFC 5322 Date of ``date`` (the application clock's time; now when not given)."""
    now = int(date.timestamp() if date is not None else time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, localtime=False, usegmt=True)
    return _date_cache[1]


class EmailSkeleton:
    """One template's message structure, built once; :meth:`build` per recipient."""

    def __init__(self, template: dict, kind: str, from_name: str, from_address: str):
        self.name = template.get("name", "")
        self.advertising = kind == advertising.ADVERTISING
        self.sender_name = template.get("sender_name") or from_name
        self.sender_contact = template.get("sender_contact") or ""
        try:
            self.subject = compile_fast(template.get("subject"))
            self.text = compile_fast(template.get("body_text"))
            self.html = compile_fast(template.get("body_html"), html=True) if template.get("body_html") else None
        except TemplateError as exc:
            raise TemplateRenderError(name=self.name, reason=exc) from None
        boundary = f"=_ums_{uuid.uuid4().hex}"
        self.boundary = boundary.encode("ascii")
        self.head = _head(self.sender_name, from_address)
        self.part_head = {
            "plain": b"--" + self.boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n",
            "html": b"--" + self.boundary + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n",
        }
        self.multipart = (
            b'Content-Type: multipart/alternative; boundary="' + self.boundary + b'"\r\n\r\n'
        )
        self.end = b"--" + self.boundary + b"--\r\n"

    def render(self, variables: dict, unsubscribe_url: str, tracker=None) -> tuple[str, str, str | None]:
        """Subject, text body and HTML body for one recipient (labels and footer included).

        The one rendering of an email body: what PASS sends and what the
        campaign preview shows (:func:`ums.campaigns.preview`). A ``tracker``
        (:class:`ums.tracking.Tracker`) rewrites the template's own links and
        adds the open pixel; the sender block and refusal link stay direct."""
        fields = {**variables, "unsubscribe_url": unsubscribe_url}
        try:
            subject = " ".join(self.subject.render(fields).split())
            text = self.text.render(fields)
            html = self.html.render(fields) if self.html else None
        except TemplateError as exc:
            raise TemplateRenderError(name=self.name, reason=exc) from None
        if tracker is not None:
            text = tracker.text(text)
            html = tracker.html(html) if html is not None else None
        if self.advertising:
            subject = advertising.label_subject(subject)
            text += advertising.footer_text(self.sender_name, self.sender_contact, unsubscribe_url)
            if html is not None:
                html += advertising.footer_html(self.sender_name, self.sender_contact, unsubscribe_url)
        return subject, text, html

    def build(self, message_id: str, to: str, variables: dict,
              unsubscribe_mailto: str, unsubscribe_url: str,
              attachments: "list[Attachment] | tuple" = (), extra_headers: "dict[str, str] | None" = None,
              sender: "tuple[str, str] | None" = None, list_headers: bool = True,
              tracker=None, date: datetime | None = None) -> bytes:
        """The complete message (CRLF line ends) for one recipient; with
        ``attachments`` the body becomes the first part of a multipart/mixed.
        ``sender`` (name, address) replaces the From of the skeleton; without
        ``list_headers`` (one-to-one mail) it carries no List-Unsubscribe.
        ``date`` is its Date (the application clock's now, from the sender)."""
        subject, text, html = self.render(variables, unsubscribe_url, tracker)
        unsubscribe = (
            f"List-Unsubscribe: <mailto:{unsubscribe_mailto}>, <{unsubscribe_url}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        ) if list_headers or self.advertising else ""
        headers = (
            f"Message-ID: {message_id}\r\n"
            f"Date: {_date_header(date)}\r\n"
            f"To: <{to}>\r\n"
            f"Subject: {_encoded_word(subject)}\r\n"
            + unsubscribe
            + "".join(f"{name}: {_header_safe(value)}\r\n" for name, value in (extra_headers or {}).items())
        ).encode("utf-8")
        if html is None:
            body = [b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    _b64_body(text)]
        else:
            body = [self.multipart, self.part_head["plain"], _b64_body(text),
                    self.part_head["html"], _b64_body(html), self.end]
        head = self.head if sender is None else _head(*sender)
        if not attachments:
            return b"".join([headers, head, *body])
        mixed = f"=_ums_mixed_{uuid.uuid4().hex}".encode("ascii")
        parts = [headers, head, b'Content-Type: multipart/mixed; boundary="' + mixed + b'"\r\n\r\n',
                 b"--" + mixed + b"\r\n", *body]
        for attachment in attachments:
            parts += [b"\r\n--" + mixed + b"\r\n", attachment.mime_part()]
        parts.append(b"\r\n--" + mixed + b"--\r\n")
        return b"".join(parts)


@dataclass
class Attachment:
    """A file carried along with a message (a fax document, a voice mail, or a
    whole original message as ``message/rfc822`` when forwarding)."""

    content_type: str
    data: bytes
    filename: str | None = None

    def mime_part(self) -> bytes:
        """The part's headers and body, CRLF line ends, no boundary lines."""
        disposition = "attachment"
        if self.filename:
            disposition += "; " + _filename_parameter(self.filename)
        if self.content_type.lower() == "message/rfc822":
            # RFC 2046: an enclosed message is never base64-encoded
            data = self.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if not data.endswith(b"\r\n"):
                data += b"\r\n"  # its last line ends; the CRLF before the boundary is the boundary's
            encoding = "7bit" if data.isascii() else "8bit"
            return (f"Content-Type: message/rfc822\r\nContent-Disposition: {disposition}\r\n"
                    f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode("ascii") + data
        return (f"Content-Type: {_header_safe(self.content_type)}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n").encode("utf-8") \
            + base64.encodebytes(self.data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def _filename_parameter(filename: str) -> str:
    name = _header_safe(filename).replace('"', "").replace("\\", "")
    if name.isascii():
        return f'filename="{name}"'
    return "filename*=" + encode_rfc2231(name, "utf-8")


def _header_safe(value) -> str:
    """A header value on one line (no CR/LF: nothing can inject a header)."""
    return " ".join(str(value).split())


def _head(name: str, address: str) -> bytes:
    """From (the name RFC 2047-encoded when it is not ASCII) and MIME-Version."""
    sender = formataddr((name, address))
    return f"From: {_encoded_from(sender, name, address)}\r\nMIME-Version: 1.0\r\n".encode("utf-8")


def _encoded_from(formatted: str, name: str, address: str) -> str:
    if formatted.isascii():
        return formatted
    return f"{_encoded_word(name)} <{address}>"


def render_text(source: str, variables: dict) -> str:
    """Render one plain-text template string (fax pages, voice scripts)."""
    try:
        return compile_text(source).render(variables)
    except TemplateError as exc:
        raise TemplateRenderError(name="inline", reason=exc) from None
