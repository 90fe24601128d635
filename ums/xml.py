"""Hardened XML parsing and XSD validation for every XML that enters UMS.

Anything that reads XML from outside (EPS events, service definitions, the WAS
``/api``, telegram layouts) goes through this module, never through a bare
``lxml.etree.fromstring``. The parser:

* never expands entities and refuses any document that has a DOCTYPE at all,
  so entity bombs ("billion laughs") and external entities
  (``<!ENTITY x SYSTEM "file:///etc/passwd">``) are rejected before their
  content could reach anyone;
* never loads a DTD and never touches the network;
* refuses documents larger than ``max_bytes`` before parsing them;
* reports errors as :class:`XmlError` subclasses whose message names the line
  and, for schema failures, the element.

API::

    from ums import xml

    root = xml.parse(data)                             # bytes or str -> root element
    schema = xml.load_schema("config/xsd/event.xsd")   # cached per path
    xml.validate(root, schema)                         # raises XmlInvalid
    root = xml.parse_valid(data, "config/xsd/event.xsd", max_bytes=65536)

Error messages never quote the document's entity values or file contents: they
come from the parser's own description of the problem and the line number.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lxml import etree

from .errors import UmsError

#: Default size limit for a document (bytes).
DEFAULT_MAX_BYTES = 1024 * 1024


class XmlError(UmsError):
    """Bad XML: {reason}."""


class XmlTooLarge(XmlError):
    """XML document too large: {size} bytes, the limit is {limit}."""


class XmlSyntaxError(XmlError):
    """Malformed XML at line {line}: {reason}."""


class XmlForbidden(XmlError):
    """XML not accepted: {reason}."""


class XmlInvalid(XmlError):
    """XML does not match the {schema} schema at line {line}, element {element}: {reason}."""


class XmlSchemaError(XmlError):
    """Cannot load XML schema {path}: {reason}."""


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


# lxml parsers are not safe to share between threads; one per thread.
_local = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _hardened_parser()
    return parser


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def parse(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse one untrusted document and return its root element.

    Raises :class:`XmlTooLarge`, :class:`XmlForbidden` (a DOCTYPE or entity
    declaration is present) or :class:`XmlSyntaxError` (with the line number).
    """
    raw = _as_bytes(data)
    if len(raw) > max_bytes:
        raise XmlTooLarge(size=len(raw), limit=max_bytes)
    if not raw.strip():
        raise XmlSyntaxError(line=1, reason="empty document")
    try:
        tree = etree.ElementTree(etree.fromstring(raw, parser=_parser()))
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from None
    except ValueError as exc:  # e.g. a str with an encoding declaration
        raise XmlSyntaxError(line=1, reason=str(exc)) from None
    _refuse_doctype(tree)
    return tree.getroot()


def _syntax_error(exc: etree.XMLSyntaxError) -> XmlError:
    message = (exc.msg or str(exc)).strip()
    lowered = message.lower()
    if "entity" in lowered or "doctype" in lowered or "dtd" in lowered:
        return XmlForbidden(reason=f"DTDs and entities are not allowed (line {exc.lineno or 1})")
    return XmlSyntaxError(line=exc.lineno or 1, reason=message)


def _refuse_doctype(tree: etree._ElementTree) -> None:
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XmlForbidden(reason="DTDs and entities are not allowed (the document has a DOCTYPE)")
    for _ in tree.getroot().iter(etree.Entity):
        raise XmlForbidden(reason="entity references are not allowed")


_schemas: dict[Path, etree.XMLSchema] = {}
_schemas_lock = threading.Lock()


def load_schema(path: str | Path) -> etree.XMLSchema:
    """Load (once, then cached) an XSD from a trusted local file."""
    resolved = Path(path).resolve()
    with _schemas_lock:
        schema = _schemas.get(resolved)
        if schema is None:
            schema = _schemas[resolved] = _read_schema(resolved)
        return schema


def _read_schema(path: Path) -> etree.XMLSchema:
    try:
        document = etree.parse(str(path), parser=_hardened_parser())
        return etree.XMLSchema(document)
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise XmlSchemaError(path=str(path), reason=str(exc)) from None


def validate(root: etree._Element, schema: etree.XMLSchema, *, name: str = "") -> None:
    """Raise :class:`XmlInvalid` naming the first offending element and line."""
    if schema.validate(root):
        return
    error = schema.error_log.last_error
    first = schema.error_log[0] if len(schema.error_log) else error
    raise XmlInvalid(
        schema=name or "XML",
        line=first.line,
        element=_element_name(first),
        reason=_reason(first.message),
    )


def _element_name(error) -> str:
    path = error.path or ""
    if path:
        leaf = path.rstrip("/").rsplit("/", 1)[-1]
        return leaf.split("[", 1)[0] or path
    return "?"


def _reason(message: str) -> str:
    # lxml prefixes "Element 'x': " which we already report separately.
    text = message.strip()
    if text.startswith("Element '") and "': " in text:
        text = text.split("': ", 1)[1]
    return text.rstrip(".")


def parse_valid(
    data: bytes | str, schema_path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> etree._Element:
    """Parse untrusted ``data`` and validate it against the XSD at ``schema_path``."""
    root = parse(data, max_bytes=max_bytes)
    validate(root, load_schema(schema_path), name=Path(schema_path).stem)
    return root


def text_of(root: etree._Element, path: str, default: str | None = None) -> str | None:
    """The stripped text of the first element at ``path`` (ElementPath), or ``default``."""
    found = root.find(path)
    if found is None or found.text is None:
        return default
    return found.text.strip()
