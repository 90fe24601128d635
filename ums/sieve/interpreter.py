"""Compile a parsed Sieve script into closures and run it against a message.

Supported: ``require``, ``if/elsif/else``, ``stop``, ``keep``, ``discard``,
``fileinto``, ``redirect``, ``reject`` (RFC 5429), the tests ``address``,
``header``, ``envelope``, ``exists``, ``size``, ``allof``, ``anyof``, ``not``,
``true``, ``false`` with ``:is``/``:contains``/``:matches``,
``:localpart``/``:domain``/``:all`` and the comparators ``i;ascii-casemap``
(default) and ``i;octet``; ``imap4flags`` (``setflag``, ``addflag``,
``removeflag``, ``hasflag``, ``:flags``) and ``enotify``'s ``notify``.

Everything is checked at compile time, so a script that compiles cannot fail
at run time for a reason found in its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Callable, Protocol

from .actions import Notification, Verdict
from .parser import Command, SieveError, Tag, Test

CAPABILITIES = {
    "fileinto", "reject", "envelope", "imap4flags", "enotify",
    "comparator-i;octet", "comparator-i;ascii-casemap",
}
COMPARATORS = {"i;octet", "i;ascii-casemap"}
MATCH_TYPES = {"is", "contains", "matches"}
ADDRESS_PARTS = {"all", "localpart", "domain"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class MessageView(Protocol):
    """What the rules see of a message (see :class:`ums.inbound.InboundMessage`)."""

    size: int
    envelope_from: str

    def header_values(self, name: str) -> list[str]:
        """Decoded (RFC 2047) values of every header of this name."""

    def folded_header_values(self, name: str) -> list[str]:
        """The same, ASCII letters lower-cased."""

    def addresses(self, name: str) -> list[str]:
        """Bare addresses found in every header of this name."""


class Stop(Exception):
    """Raised by ``stop`` to end the whole run."""


@dataclass
class Run:
    """The state of one evaluation: the message, its recipient, flags and actions."""

    message: MessageView
    recipient: str
    verdict: Verdict
    flags: list[str]
    implicit_keep: bool = True


Check = Callable[[Run], bool]
Action = Callable[[Run], None]


# --- matching -------------------------------------------------------------------


def fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def glob_to_regex(pattern: str, casemap: bool) -> re.Pattern:
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if casemap else 0)
    return re.compile("".join(parts), flags)


def matcher(match_type: str, comparator: str, keys: list[str], prefolded: bool = False) -> Callable[[str], bool]:
    """A function telling whether a value matches any key (``prefolded``: values
    are already ASCII-lower-cased, so casemap comparisons skip folding them)."""
    casemap = comparator == "i;ascii-casemap"
    if prefolded and casemap and match_type != "matches":
        prepared = [fold(key) for key in keys]
        if match_type == "is":
            wanted = set(prepared)
            return wanted.__contains__
        if len(prepared) == 1:
            only = prepared[0]
            return lambda value: only in value
        return lambda value: any(key in value for key in prepared)
    if match_type == "matches":
        patterns = [glob_to_regex(key, casemap) for key in keys]
        return lambda value: any(p.fullmatch(value) for p in patterns)
    prepared = [fold(key) for key in keys] if casemap else list(keys)
    if match_type == "is":
        wanted = set(prepared)
        if casemap:
            return lambda value: fold(value) in wanted
        return lambda value: value in wanted
    if casemap:
        return lambda value: any(key in fold(value) for key in prepared)
    return lambda value: any(key in value for key in prepared)


def address_part(address: str, part: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if part == "localpart":
        return local
    if part == "domain":
        return domain
    return address


# --- argument checking --------------------------------------------------------------


class Arguments:
    """Pulls tagged and positional arguments off a command or test, with errors
    pointing at the place in the script."""

    def __init__(self, node: Command | Test):
        self.node = node
        self.tags: dict[str, object] = {}
        self.positional: list = []
        items = list(node.arguments)
        while items:
            item = items.pop(0)
            if isinstance(item, Tag):
                self.tags[item.name] = self._tag_value(item, items)
            else:
                self.positional.append(item)

    def _tag_value(self, tag: Tag, items: list):
        if tag.name in TAGS_WITH_STRING or tag.name in TAGS_WITH_LIST:
            if not items or not isinstance(items[0], list):
                raise self.error(f":{tag.name} needs a string argument", tag)
            value = items.pop(0)
            if tag.name in TAGS_WITH_STRING:
                return value[0]
            return value
        if tag.name in TAGS_WITH_NUMBER:
            if not items or not isinstance(items[0], int):
                raise self.error(f":{tag.name} needs a number", tag)
            return items.pop(0)
        return True

    def error(self, reason: str, where=None) -> SieveError:
        where = where or self.node
        return SieveError(line=where.line, column=where.column, reason=reason)

    def allow(self, *names: str) -> None:
        for name in self.tags:
            if name not in names:
                raise self.error(f"{self.node.name} does not take :{name}")

    def one_of(self, choices: set[str], default: str, what: str) -> str:
        found = [name for name in self.tags if name in choices]
        if len(found) > 1:
            raise self.error(f"{self.node.name} takes only one {what}, got :{found[0]} and :{found[1]}")
        return found[0] if found else default

    def comparator(self) -> str:
        name = self.tags.get("comparator", "i;ascii-casemap")
        if name not in COMPARATORS:
            raise self.error(f"unknown comparator {name!r} (use i;ascii-casemap or i;octet)")
        return name

    def strings(self, count: int, names: str) -> list[list[str]]:
        if len(self.positional) != count or not all(isinstance(p, list) for p in self.positional):
            raise self.error(f"{self.node.name} expects {names}")
        return self.positional


TAGS_WITH_STRING = {"comparator", "from", "message", "importance"}
TAGS_WITH_LIST = {"flags", "options"}
TAGS_WITH_NUMBER = {"over", "under"}


# --- tests --------------------------------------------------------------------------


class Compiler:
    def __init__(self):
        self.required: set[str] = set()

    def need(self, capability: str, node) -> None:
        if capability not in self.required:
            raise SieveError(
                line=node.line, column=node.column,
                reason=f'{node.name} needs require "{capability}"',
            )

    def test(self, node: Test) -> Check:
        build = getattr(self, f"test_{node.name}", None)
        if build is None:
            raise SieveError(line=node.line, column=node.column, reason=f"unknown test {node.name!r}")
        if node.name not in ("allof", "anyof", "not") and node.tests:
            raise SieveError(line=node.line, column=node.column, reason=f"{node.name} takes no nested test")
        return build(node)

    def test_true(self, node: Test) -> Check:
        self._no_arguments(node)
        return lambda run: True

    def test_false(self, node: Test) -> Check:
        self._no_arguments(node)
        return lambda run: False

    def _no_arguments(self, node) -> None:
        if node.arguments:
            raise SieveError(line=node.line, column=node.column, reason=f"{node.name} takes no arguments")

    def test_not(self, node: Test) -> Check:
        self._no_arguments(node)
        if len(node.tests) != 1:
            raise SieveError(line=node.line, column=node.column, reason="not takes exactly one test")
        inner = self.test(node.tests[0])
        return lambda run: not inner(run)

    def test_allof(self, node: Test) -> Check:
        checks = self._test_list(node)
        if len(checks) == 2:
            first, second = checks
            return lambda run: first(run) and second(run)
        return lambda run: all(check(run) for check in checks)

    def test_anyof(self, node: Test) -> Check:
        checks = self._test_list(node)
        return lambda run: any(check(run) for check in checks)

    def _test_list(self, node: Test) -> list[Check]:
        self._no_arguments(node)
        if not node.tests:
            raise SieveError(line=node.line, column=node.column, reason=f"{node.name} needs a test list")
        return [self.test(test) for test in node.tests]

    def test_exists(self, node: Test) -> Check:
        args = Arguments(node)
        args.allow()
        (names,) = args.strings(1, "a list of header names")
        return lambda run: all(run.message.header_values(name) for name in names)

    def test_size(self, node: Test) -> Check:
        args = Arguments(node)
        args.allow("over", "under")
        if len(args.tags) != 1 or args.positional:
            raise args.error("size expects :over or :under and a number")
        if "over" in args.tags:
            limit = args.tags["over"]
            return lambda run: run.message.size > limit
        limit = args.tags["under"]
        return lambda run: run.message.size < limit

    def _match_args(self, node: Test, address: bool):
        args = Arguments(node)
        allowed = ["comparator", *MATCH_TYPES] + (list(ADDRESS_PARTS) if address else [])
        args.allow(*allowed)
        match_type = args.one_of(MATCH_TYPES, "is", "match type")
        part = args.one_of(ADDRESS_PARTS, "all", "address part") if address else "all"
        comparator = args.comparator()
        if comparator == "i;octet" and "comparator" in args.tags:
            pass  # always available (RFC 5228 2.7.3); require is optional
        names, keys = args.strings(2, "a list of header names and a list of keys")
        prefolded = comparator == "i;ascii-casemap" and match_type != "matches"
        return matcher(match_type, comparator, keys, prefolded), part, names, prefolded

    def test_header(self, node: Test) -> Check:
        match, _, names, prefolded = self._match_args(node, address=False)

        def check(run: Run) -> bool:
            values_of = run.message.folded_header_values if prefolded else run.message.header_values
            for name in names:
                for value in values_of(name):
                    if match(value):
                        return True
            return False

        return check

    def test_address(self, node: Test) -> Check:
        match, part, names, prefolded = self._match_args(node, address=True)

        def check(run: Run) -> bool:
            for name in names:
                for address in run.message.addresses(name):
                    value = address_part(address, part)
                    if match(fold(value) if prefolded else value):
                        return True
            return False

        return check

    def test_envelope(self, node: Test) -> Check:
        self.need("envelope", node)
        match, part, names, prefolded = self._match_args(node, address=True)
        for name in names:
            if fold(name) not in ("from", "to"):
                raise SieveError(line=node.line, column=node.column,
                                 reason=f"envelope part must be from or to, not {name!r}")

        def check(run: Run) -> bool:
            for name in names:
                address = address_part(run.message.envelope_from if fold(name) == "from" else run.recipient, part)
                if match(fold(address) if prefolded else address):
                    return True
            return False

        return check

    def test_hasflag(self, node: Test) -> Check:
        self.need("imap4flags", node)
        args = Arguments(node)
        args.allow("comparator", *MATCH_TYPES)
        match = matcher(args.one_of(MATCH_TYPES, "is", "match type"), args.comparator(),
                        args.strings(1, "a list of flags")[0])
        return lambda run: any(match(flag) for flag in run.flags)

    # --- commands ---------------------------------------------------------------

    def block(self, commands: list[Command]) -> list[Action]:
        return [self.command(command) for command in commands]

    def command(self, node: Command) -> Action:
        build = getattr(self, f"command_{node.name}", None)
        if build is None:
            raise SieveError(line=node.line, column=node.column, reason=f"unknown command {node.name!r}")
        if node.name not in ("if", "elsif", "else") and (node.block is not None or node.tests):
            raise SieveError(line=node.line, column=node.column, reason=f"{node.name} takes no test or block")
        return build(node)

    def command_require(self, node: Command) -> Action:
        args = Arguments(node)
        args.allow()
        (names,) = args.strings(1, "a list of capabilities")
        for name in names:
            if name not in CAPABILITIES:
                raise args.error(f"unsupported extension {name!r}")
            self.required.add(name)
        return lambda run: None

    def command_if(self, node: Command) -> Action:
        arms: list[tuple[Check, list[Action]]] = []
        for branch in [node, *node.branches]:
            if branch.block is None:
                raise SieveError(line=branch.line, column=branch.column, reason=f"{branch.name} needs a block")
            if branch.name == "else":
                if branch.tests or branch.arguments:
                    raise SieveError(line=branch.line, column=branch.column, reason="else takes no test")
                check = None
            else:
                if len(branch.tests) != 1 or branch.arguments:
                    raise SieveError(line=branch.line, column=branch.column,
                                     reason=f"{branch.name} needs exactly one test")
                check = self.test(branch.tests[0])
            arms.append((check or (lambda run: True), self.block(branch.block)))

        def run_if(run: Run) -> None:
            for check, actions in arms:
                if check(run):
                    for action in actions:
                        action(run)
                    return

        return run_if

    def command_stop(self, node: Command) -> Action:
        self._no_arguments(node)

        def stop(run: Run) -> None:
            raise Stop

        return stop

    def command_keep(self, node: Command) -> Action:
        flags = self._flags_argument(node)
        return lambda run: file_into(run, "INBOX", flags)

    def command_discard(self, node: Command) -> Action:
        self._no_arguments(node)

        def discard(run: Run) -> None:
            run.implicit_keep = False
            run.verdict.discarded = True

        return discard

    def command_fileinto(self, node: Command) -> Action:
        self.need("fileinto", node)
        flags = self._flags_argument(node)
        args = Arguments(node)
        (folder,) = args.strings(1, "a folder name")
        if len(folder) != 1 or not folder[0].strip():
            raise args.error("fileinto expects one folder name")
        name = folder[0]
        return lambda run: file_into(run, name, flags)

    def _flags_argument(self, node: Command):
        args = Arguments(node)
        args.allow("flags")
        if "flags" in args.tags:
            self.need("imap4flags", node)
            return list(args.tags["flags"])
        if node.name == "keep" and args.positional:
            raise args.error("keep takes no arguments")
        return None

    def command_redirect(self, node: Command) -> Action:
        args = Arguments(node)
        args.allow()
        (target,) = args.strings(1, "an address")
        address = parseaddr(target[0])[1] if len(target) == 1 else ""
        if "@" not in address:
            raise args.error(f"redirect needs one valid address, not {target!r}")

        def redirect(run: Run) -> None:
            run.implicit_keep = False
            if address not in run.verdict.redirects:
                run.verdict.redirects.append(address)

        return redirect

    def command_reject(self, node: Command) -> Action:
        self.need("reject", node)
        args = Arguments(node)
        args.allow()
        (reason,) = args.strings(1, "a reason")
        text = "\n".join(reason)

        def reject(run: Run) -> None:
            run.implicit_keep = False
            run.verdict.reject = text

        return reject

    def _flag_command(self, node: Command, change: Callable[[list[str], list[str]], list[str]]) -> Action:
        self.need("imap4flags", node)
        args = Arguments(node)
        args.allow()
        (flags,) = args.strings(1, "a list of flags")
        words = [word for flag in flags for word in flag.split()]

        def apply(run: Run) -> None:
            run.flags = change(run.flags, words)

        return apply

    def command_setflag(self, node: Command) -> Action:
        return self._flag_command(node, lambda current, words: _unique(words))

    def command_addflag(self, node: Command) -> Action:
        return self._flag_command(node, lambda current, words: _unique(current + words))

    def command_removeflag(self, node: Command) -> Action:
        return self._flag_command(
            node, lambda current, words: [f for f in current if fold(f) not in {fold(w) for w in words}]
        )

    def command_notify(self, node: Command) -> Action:
        self.need("enotify", node)
        args = Arguments(node)
        args.allow("from", "importance", "options", "message")
        (method,) = args.strings(1, "a notification method such as mailto:someone@example.com")
        if len(method) != 1 or ":" not in method[0]:
            raise args.error(f"notify needs one method URI, not {method!r}")
        importance = args.tags.get("importance")
        note = Notification(
            method=method[0], message=args.tags.get("message"),
            importance=str(importance or "2"), sender=args.tags.get("from"),
            options=tuple(args.tags.get("options") or ()),
        )

        def notify(run: Run) -> None:
            if note not in run.verdict.notifications:
                run.verdict.notifications.append(note)

        return notify


def _unique(words: list[str]) -> list[str]:
    seen, result = set(), []
    for word in words:
        if fold(word) not in seen:
            seen.add(fold(word))
            result.append(word)
    return result


def file_into(run: Run, folder: str, flags: list[str] | None) -> None:
    run.implicit_keep = False
    chosen = list(flags) if flags is not None else list(run.flags)
    existing = run.verdict.folders.setdefault(folder, [])
    existing.extend(f for f in chosen if f not in existing)


def compile_commands(commands: list[Command]) -> list[Action]:
    compiler = Compiler()
    actions = []
    seen_other = False
    for command in commands:
        if command.name == "require" and seen_other:
            raise SieveError(line=command.line, column=command.column,
                             reason="require must come before any other command")
        seen_other |= command.name != "require"
        actions.append(compiler.command(command))
    return actions
