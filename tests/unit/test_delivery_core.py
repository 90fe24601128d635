"""One owner of the delivery lifecycle (#15): only ``ums.queue.rows`` inserts
delivery rows, only ``ums.queue.records`` builds and inserts CDR rows, only
``ums.queue.message_ids`` makes Message-IDs, and ``DeliveryState`` is the
only list of delivery states — no other module spells a group of them out.

The scan reads every module of ``ums/``, ``was/``, ``eps/``, ``mas/`` and
``pass/``; the checks on small samples first show it finds what it looks for.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ums.queue.states import ALL_STATES, CLAIMABLE_STATES, FINAL_STATES, PENDING_STATES, DeliveryState, allowed

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ums", "was", "eps", "mas", "pass")
#: spelled-out state groups in modules this branch may not change (WAS); the
#: lead moves them onto ums.queue.states (UNDELIVERED_STATES, PENDING_STATES…)
NOT_YET_MOVED: set[str] = set()

DELIVERY_INSERT = re.compile(r"insert\(\s*deliveries\b|deliveries\.insert\(|INSERT\s+INTO\s+deliveries|"
                             r"insert_rows\(\s*\w+\s*,\s*deliveries\b", re.I)
CDR_INSERT = re.compile(r"insert\(\s*cdr\b|cdr\.insert\(|INSERT\s+INTO\s+cdr\b|insert_rows\(\s*\w+\s*,\s*cdr\b",
                        re.I)
CDR_BUILDER = re.compile(r"def attempt_row\(|\"uniqueid\":")
MESSAGE_ID = re.compile(r"time_ordered_key\(\)\}@|time_ordered_hex\w*\([^)]*\)\s*\+\s*literal\(f?\"@")


def _sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _modules_matching(pattern: re.Pattern, sources: dict[str, str]) -> set[str]:
    return {name for name, text in sources.items() if pattern.search(text)}


def _state_groups(source: str) -> list[tuple[str, ...]]:
    """Tuples, lists and sets of two or more string literals that are all delivery states."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in ALL_STATES
                for e in node.elts):
            found.append(tuple(e.value for e in node.elts))
    return found


def test_the_scan_recognises_what_it_looks_for():
    sample = {"a.py": "conn.execute(insert(deliveries).values(**row))", "b.py": 'sql = "INSERT INTO cdr (x)"',
              "c.py": "bulk.insert_rows(conn, cdr, rows)", "d.py": "x = 1"}
    assert _modules_matching(DELIVERY_INSERT, sample) == {"a.py"}
    assert _modules_matching(CDR_INSERT, sample) == {"b.py", "c.py"}
    assert _state_groups('if state in ("failed", "expired"): pass') == [("failed", "expired")]
    assert _state_groups('if x in ("paused", "cancelled"): pass') == []


def test_only_the_core_inserts_delivery_rows():
    assert _modules_matching(DELIVERY_INSERT, _sources()) == {"ums/queue/rows.py"}


def test_only_the_core_builds_and_inserts_cdr_rows():
    sources = _sources()
    assert _modules_matching(CDR_INSERT, sources) == {"ums/queue/records.py"}
    assert _modules_matching(CDR_BUILDER, sources) == {"ums/queue/records.py"}


def test_only_the_core_makes_message_ids():
    assert _modules_matching(MESSAGE_ID, _sources()) == {"ums/queue/message_ids.py"}


def test_delivery_state_is_the_only_list_of_states():
    spelled = {name: groups for name, text in _sources().items() if name != "ums/queue/states.py"
               for groups in [_state_groups(text)] if groups}
    assert set(spelled) <= NOT_YET_MOVED, spelled


def test_the_derived_state_sets_follow_the_enum():
    assert set(PENDING_STATES) | set(FINAL_STATES) == {s.value for s in DeliveryState}
    assert not set(PENDING_STATES) & set(FINAL_STATES)
    assert set(CLAIMABLE_STATES) == set(PENDING_STATES) - {"sending"}
    assert allowed("sending", "sent") and allowed("queued", "cancelled")
    assert not allowed("sent", "queued") and not allowed("cancelled", "sending")
