"""Fax and voice rendering speed: pages per second for a Korean 3-page fax
template (layout + Ghostscript), with Ghostscript alone on the same PDF as the
reference; seconds of telephony audio produced per second for a Korean voice
notice (espeak-ng + sox), with espeak-ng alone as the reference.

    .venv/bin/python bench/channels_media.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from ums.channels.fax.render import Layout, advertising_header, pdf_to_fax, render_template
from ums.channels.voice.tts import duration, synthesize
from ums.media import run_tool

FONTS = ("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf")
PAGE = "<h2>{{ name }} 고객님 거래 안내 {{ n }}</h2>" + "<p>이번 달 입출금 내역과 잔액을 알려 드립니다. 문의는 고객센터로.</p>" * 12
TEMPLATE = {"subject": "안내", "sender_name": "한빛은행", "sender_contact": "02-123-4567",
            "body_html": "".join(f'<div class="page-break">{PAGE.replace("{{ n }}", str(n))}</div>' if n else PAGE
                                 for n in range(3))}
NOTICE = "홍길동 고객님, 계좌에 오백만원이 입금되었습니다. 자세한 내용은 고객센터로 문의해 주십시오. 감사합니다."


async def bench_fax(rounds: int, work: Path) -> None:
    layout = Layout(*FONTS, header=advertising_header(TEMPLATE, "080-123-4567"))
    started = time.perf_counter()
    for index in range(rounds):
        document = await render_template(TEMPLATE, {"name": "홍길동"}, layout, work / f"fax{index}")
    full = time.perf_counter() - started
    pages = document.pages * rounds
    started = time.perf_counter()
    for index in range(rounds):
        await pdf_to_fax(work / "fax0" / "document.pdf", work / f"ref{index}.tif")
    gs_only = time.perf_counter() - started
    print(f"fax render   : {pages / full:6.1f} pages/s template->TIFF G3 204x196 ({document.pages} pages, "
          f"{document.bytes / document.pages / 1024:.1f} KiB/page)")
    print(f"  reference  : {pages / gs_only:6.1f} pages/s Ghostscript alone; layout share "
          f"{(full - gs_only) / full:.0%}, ratio full/reference {full / gs_only:.2f}x")


async def bench_voice(rounds: int, work: Path) -> None:
    started = time.perf_counter()
    for index in range(rounds):
        audio = await synthesize(NOTICE, work / f"notice{index}.wav")
    full = time.perf_counter() - started
    started = time.perf_counter()
    for index in range(rounds):
        await run_tool(["espeak-ng", "-v", "ko", "-w", str(work / f"ref{index}.wav"), NOTICE], 60)
    espeak_only = time.perf_counter() - started
    print(f"voice render : {audio.seconds * rounds / full:6.1f}x real time ({audio.seconds:.2f}s of 8 kHz audio "
          f"per notice, {full / rounds * 1000:.0f} ms each)")
    print(f"  reference  : {duration(work / 'ref0.wav') * rounds / espeak_only:6.1f}x real time espeak-ng alone; "
          f"ratio full/reference {full / espeak_only:.2f}x")


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        await bench_fax(rounds, Path(directory))
        await bench_voice(rounds, Path(directory))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
