"""The hardened XML helper: bad documents get clear errors, never their content."""

from pathlib import Path

import pytest

from ums import xml
from ums.config import SHIPPED_CONFIG_DIR

EVENT_XSD = SHIPPED_CONFIG_DIR / "xsd" / "event.xsd"

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<event><type>&lol4;</type><customer>C1</customer></event>"""


def xxe(path: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file://{path}">]>'
        "<event><type>deposit</type><customer>&x;</customer></event>"
    ).encode()


def test_a_good_event_parses_and_validates():
    root = xml.parse_valid(
        "<event><type>deposit</type><customer>C1</customer><data><amount>5</amount></data></event>",
        EVENT_XSD,
    )
    assert xml.text_of(root, "data/amount") == "5"


def test_an_entity_bomb_is_refused_without_expansion():
    with pytest.raises(xml.XmlForbidden) as caught:
        xml.parse(BOMB)
    assert "lollol" not in str(caught.value)
    assert "not allowed" in str(caught.value)


def test_an_external_entity_never_reads_the_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    with pytest.raises(xml.XmlForbidden) as caught:
        xml.parse(xxe(secret))
    assert "TOP-SECRET" not in str(caught.value)


def test_a_schema_failure_names_the_element_and_line():
    document = "<event>\n<type>deposit</type>\n<customer>C1</customer>\n<occurred>yesterday</occurred>\n</event>"
    with pytest.raises(xml.XmlInvalid) as caught:
        xml.parse_valid(document, EVENT_XSD)
    message = str(caught.value)
    assert "occurred" in message and "line 4" in message


def test_a_missing_required_element_is_reported():
    with pytest.raises(xml.XmlInvalid) as caught:
        xml.parse_valid("<event><type>deposit</type></event>", EVENT_XSD)
    assert "customer" in str(caught.value)


def test_malformed_xml_reports_the_line():
    with pytest.raises(xml.XmlSyntaxError) as caught:
        xml.parse(b"<event>\n<type>x</typo>\n</event>")
    assert "line 2" in str(caught.value)


def test_an_oversized_document_is_refused_before_parsing():
    with pytest.raises(xml.XmlTooLarge):
        xml.parse(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)


def test_empty_input_is_a_syntax_error():
    with pytest.raises(xml.XmlSyntaxError):
        xml.parse(b"  ")
