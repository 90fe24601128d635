"""Skipping scripts that cannot act on a message, without running them.

Most site and mailbox scripts are a list of ``if header :contains "subject"
"…" { … }`` rules. A script made only of ``require`` and ``if``/``elsif``
commands (no ``else``) whose every test needs some header to contain some
text can do nothing at all unless one of those (header, text) pairs occurs.
That set of pairs is the script's *guard*, found once at compile time.

A :class:`Chain` (the scripts that run for one mailbox, in order) checks all
guards of all its scripts against the message's folded headers at once and
runs only the scripts that may act, in their order. A guard is a necessary
condition only: a script it lets through still runs its own tests in full,
so the result is exactly what running every script would give.
"""

from __future__ import annotations

import re

from .interpreter import Arguments, fold
from .parser import Command, Test

#: (lower-cased header name, ASCII-lower-cased text it must contain)
Pair = tuple[str, str]


def test_guard(node: Test) -> frozenset[Pair] | None:
    """Pairs one of which must occur for ``node`` to be true; None when no such set is known."""
    if node.name == "header":
        return _header_guard(node)
    if node.name == "allof":
        guards = [test_guard(test) for test in node.tests]
        known = [guard for guard in guards if guard is not None]
        return min(known, key=len) if known else None
    if node.name == "anyof":
        guards = [test_guard(test) for test in node.tests]
        if not guards or any(guard is None for guard in guards):
            return None
        return frozenset().union(*guards)
    if node.name == "false":
        return frozenset()
    return None


def _header_guard(node: Test) -> frozenset[Pair] | None:
    args = Arguments(node)
    match_type = next((name for name in ("is", "contains", "matches") if name in args.tags), "is")
    comparator = args.tags.get("comparator", "i;ascii-casemap")
    # ``:is`` implies ``:contains``; folded text contains the folded key when the casemap compare holds
    if match_type == "matches" or comparator != "i;ascii-casemap" or len(args.positional) != 2:
        return None
    names, keys = args.positional
    return frozenset((name.lower(), fold(key)) for name in names for key in keys)


def script_guard(commands: list[Command]) -> frozenset[Pair] | None:
    """The guard of a whole (already compiled, so valid) script; None: it must always run."""
    pairs: set[Pair] = set()
    for command in commands:
        if command.name == "require":
            continue
        if command.name != "if" or any(branch.name == "else" for branch in command.branches):
            return None
        for branch in [command, *command.branches]:
            guard = test_guard(branch.tests[0])
            if guard is None:
                return None
            pairs |= guard
    return frozenset(pairs)


class Chain:
    """Scripts in run order, with their guards indexed by header name."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.always = [i for i, script in enumerate(self.scripts) if script.guard is None]
        self.needles: dict[str, list[tuple[str, int]]] = {}
        for index, script in enumerate(self.scripts):
            for header, key in sorted(script.guard or ()):
                self.needles.setdefault(header, []).append((key, index))
        #: per header, a pattern matching any of its keys: most messages match none, and one
        #: search in C rejects them all at once before any key is looked for on its own
        self.any_key = {header: _any_of(key for key, _ in needles) for header, needles in self.needles.items()}

    def candidates(self, message) -> list:
        """The scripts that may act on ``message``, in run order."""
        chosen = set(self.always)
        for header, needles in self.needles.items():
            values = message.folded_header_values(header)
            if not values:
                continue
            # a key holding NUL could match across two values: a false hit only runs the script
            text = values[0] if len(values) == 1 else "\0".join(values)
            if not self.any_key[header].search(text):
                continue
            chosen.update(index for key, index in needles if key in text)
        return [self.scripts[index] for index in sorted(chosen)]


def _any_of(keys) -> re.Pattern:
    """A pattern that finds any of ``keys`` (literally) in a text."""
    return re.compile("|".join(re.escape(key) for key in sorted(set(keys), key=len, reverse=True)))
