"""Sieve rules (RFC 5228) for MAS: parse once, cache, run.

::

    script = compile_script(text, name="site")      # SieveError with line and column
    verdict = evaluate([site, mailbox_script], message, recipient="sales@bank.example")
    verdict.folders   # {"Replies": ["\\\\Seen"]}

Scripts run in order with one shared state (flags, actions, implicit keep),
so a site script's ``stop`` ends the run before the mailbox's own script.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from .actions import Notification, Verdict
from .guard import Chain, script_guard
from .interpreter import Action, MessageView, Run, Stop, compile_commands
from .parser import SieveError, parse_tree

__all__ = ["Chain", "Script", "SieveError", "Verdict", "Notification", "compile_script", "evaluate", "check"]

_CACHE_SIZE = 512
_cache: OrderedDict[str, "Script"] = OrderedDict()


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    actions: tuple[Action, ...]
    #: (header, text) pairs one of which must occur for the script to act; None: always runs
    guard: frozenset | None = None


def check(text: str) -> None:
    """Raise :class:`SieveError` (with line and column) if ``text`` is not a valid script."""
    compile_commands(parse_tree(text))


def compile_script(text: str, name: str = "script") -> Script:
    """Parse and compile a script; the same text is compiled only once (LRU cache)."""
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached if cached.name == name else Script(name, text, cached.actions, cached.guard)
    tree = parse_tree(text)
    script = Script(name, text, tuple(compile_commands(tree)), script_guard(tree))
    _cache[key] = script
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return script


def evaluate(scripts: list[Script] | Chain, message: MessageView, recipient: str) -> Verdict:
    """Run ``scripts`` in order for one recipient and return what they decided.

    When no script files, discards, redirects or rejects the message, the
    implicit keep files it into INBOX. Pass a :class:`Chain` built once for a
    list that is run often: it skips the scripts whose guard rules them out.
    """
    chain = scripts if isinstance(scripts, Chain) else Chain(scripts)
    run = Run(message=message, recipient=recipient, verdict=Verdict(), flags=[])
    try:
        for script in chain.candidates(message):
            run.verdict.trace.append(script.name)
            for action in script.actions:
                action(run)
    except Stop:
        pass
    if run.implicit_keep:
        run.verdict.implicit_keep = True
        folder = run.verdict.folders.setdefault("INBOX", [])
        folder.extend(f for f in run.flags if f not in folder)
    return run.verdict
