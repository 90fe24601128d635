"""A 3-page Korean fax made by UMS's own fax path (ums/channels/fax/render.py,
from a Korean text template in the Nanum font) and the mail a fax-to-email
gateway sends when it receives it: for the tests that search fax text."""

from __future__ import annotations

from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path

from ums.channels.fax.render import Layout, render_template

#: a word on the second page only (in no other page, subject or body)
SECOND_PAGE_WORD = "환불신청서"
PAGES = (
    "고객님께 안내드립니다\n첫째 페이지 내용입니다",
    f"둘째 페이지에는 {SECOND_PAGE_WORD} 양식이 있습니다\n계좌번호를 적어주세요",
    "셋째 페이지 감사합니다",
)
FONTS = Layout("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf")
SUBJECT = "Fax from +82 2 555 0100 (3 pages)"


async def render(workdir: Path) -> bytes:
    """The three pages rendered as UMS sends a fax: a TIFF Class F, G3, 204×196 dpi."""
    document = await render_template({"body_text": "\f".join(PAGES), "subject": "안내"}, {}, FONTS, workdir, "g3")
    assert document.pages == 3
    return document.path.read_bytes()


def gateway_mail(to: str, tiff: bytes) -> bytes:
    """The mail a fax-to-email gateway sends for a received fax (the fax as a TIFF attachment)."""
    message = MIMEMultipart()
    message["From"] = "fax-gateway@fax.bank.example"
    message["To"] = to
    message["Subject"] = SUBJECT
    message["Date"] = formatdate()
    message["Message-ID"] = make_msgid(domain="fax.bank.example")
    message.attach(MIMEText("You have received a fax.\n"))
    attachment = MIMEImage(tiff, "tiff")
    attachment.add_header("Content-Disposition", "attachment", filename="fax-0001.tif")
    message.attach(attachment)
    return message.as_bytes()
