"""Sieve (RFC 5228) lexer and parser: script text to a tree of commands.

A compact hand-written parser rather than a library, because the rules engine
needs exact line and column on every error, unescaped strings and multi-line
``text:`` literals, and a tree it can compile into fast closures. The grammar
is RFC 5228's generic one; :mod:`.validate` checks each command's arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ums.errors import UmsError


class SieveError(UmsError):
    """Sieve script error at line {line}, column {column}: {reason}."""


@dataclass(frozen=True)
class Token:
    kind: str  # identifier, tag, number, string, multiline, punct, end
    value: object
    line: int
    column: int


@dataclass
class Tag:
    name: str  # without the colon, lower-case
    line: int
    column: int


@dataclass
class Test:
    name: str
    arguments: list  # str-lists (list[str]), ints, Tags
    tests: list["Test"]
    line: int
    column: int


@dataclass
class Command:
    name: str
    arguments: list
    tests: list[Test]
    block: list["Command"] | None
    line: int
    column: int
    #: for if/elsif: the following elsif/else commands, attached by the parser
    branches: list["Command"] = field(default_factory=list)


_QUANTIFIERS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n]+)
  | (?P<hash>\#[^\n]*)
  | (?P<bracket>/\*.*?\*/)
  | (?P<multiline>text:[ \t]*(?:\#[^\n]*)?\r?\n)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>[0-9]+[KMGkmg]?)(?![A-Za-z_0-9])
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[\[\](){},;])
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        column = pos - line_start + 1
        match = _TOKEN.match(text, pos)
        if not match:
            if text.startswith("/*", pos):
                raise SieveError(line=line, column=column, reason="comment is not closed with */")
            if text[pos] == '"':
                raise SieveError(line=line, column=column, reason="string is not closed with a quote")
            raise SieveError(line=line, column=column, reason=f"unexpected character {text[pos]!r}")
        kind = match.lastgroup
        end = match.end()
        if kind == "multiline":
            end, value = _read_multiline(text, end, line, column)
            tokens.append(Token("string", value, line, column))
        elif kind == "string":
            tokens.append(Token("string", _UNESCAPE.sub(r"\1", match.group()[1:-1]), line, column))
        elif kind == "number":
            digits = match.group()
            suffix = digits[-1].upper() if digits[-1].isalpha() else ""
            number = int(digits.rstrip("KMGkmg")) * _QUANTIFIERS[suffix]
            tokens.append(Token("number", number, line, column))
        elif kind == "tag":
            tokens.append(Token("tag", match.group()[1:].lower(), line, column))
        elif kind == "identifier":
            tokens.append(Token("identifier", match.group().lower(), line, column))
        elif kind == "punct":
            tokens.append(Token("punct", match.group(), line, column))
        consumed = text[pos:end]
        newlines = consumed.count("\n")
        if newlines:
            line += newlines
            line_start = pos + consumed.rindex("\n") + 1
        pos = end
    tokens.append(Token("end", None, line, pos - line_start + 1))
    return tokens


def _read_multiline(text: str, start: int, line: int, column: int) -> tuple[int, str]:
    """A ``text:`` literal runs to a line holding a single dot; ``..`` unstuffs to ``.``."""
    lines, pos = [], start
    while True:
        newline = text.find("\n", pos)
        if newline < 0:
            raise SieveError(line=line, column=column, reason="text: literal is not ended by a line with a single '.'")
        current = text[pos:newline].rstrip("\r")
        pos = newline + 1
        if current == ".":
            return pos, "".join(lines)
        lines.append((current[1:] if current.startswith("..") else current) + "\r\n")


class Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, reason: str, token: Token | None = None):
        token = token or self.token
        return SieveError(line=token.line, column=token.column, reason=reason)

    def is_punct(self, char: str) -> bool:
        return self.token.kind == "punct" and self.token.value == char

    def expect(self, char: str, what: str) -> None:
        if not self.is_punct(char):
            raise self.error(f"expected {char!r} {what}, found {describe(self.token)}")
        self.advance()

    def commands(self, inside_block: bool) -> list[Command]:
        result: list[Command] = []
        while not (self.token.kind == "end" or (inside_block and self.is_punct("}"))):
            result.append(self.command())
        return result

    def command(self) -> Command:
        token = self.token
        if token.kind != "identifier":
            raise self.error(f"expected a command, found {describe(token)}")
        self.advance()
        arguments, tests = self.arguments()
        block = None
        if self.is_punct("{"):
            opening = self.advance()
            block = self.commands(inside_block=True)
            if self.token.kind == "end":
                raise self.error("block opened here is not closed with '}'", opening)
            self.advance()
        else:
            self.expect(";", f"after {token.value}")
        return Command(token.value, arguments, tests, block, token.line, token.column)

    def arguments(self) -> tuple[list, list[Test]]:
        arguments: list = []
        while True:
            token = self.token
            if token.kind == "tag":
                arguments.append(Tag(token.value, token.line, token.column))
                self.advance()
            elif token.kind == "number":
                arguments.append(token.value)
                self.advance()
            elif token.kind == "string" or self.is_punct("["):
                arguments.append(self.string_list())
            else:
                break
        tests: list[Test] = []
        if self.token.kind == "identifier":
            tests = [self.test()]
        elif self.is_punct("("):
            tests = self.test_list()
        return arguments, tests

    def string_list(self) -> list[str]:
        if self.token.kind == "string":
            return [self.advance().value]
        self.advance()  # [
        strings = []
        while True:
            if self.token.kind != "string":
                raise self.error(f"expected a string in the list, found {describe(self.token)}")
            strings.append(self.advance().value)
            if self.is_punct(","):
                self.advance()
                continue
            self.expect("]", "to close the string list")
            return strings

    def test(self) -> Test:
        token = self.token
        if token.kind != "identifier":
            raise self.error(f"expected a test, found {describe(token)}")
        self.advance()
        arguments, tests = self.arguments()
        return Test(token.value, arguments, tests, token.line, token.column)

    def test_list(self) -> list[Test]:
        self.advance()  # (
        tests = [self.test()]
        while self.is_punct(","):
            self.advance()
            tests.append(self.test())
        self.expect(")", "to close the test list")
        return tests


def describe(token: Token) -> str:
    if token.kind == "end":
        return "end of script"
    if token.kind == "string":
        return "a string"
    if token.kind == "tag":
        return f"':{token.value}'"
    return repr(str(token.value))


def parse_tree(text: str) -> list[Command]:
    """Parse script text into commands, attaching elsif/else to their if."""
    commands = Parser(text).commands(inside_block=False)
    return attach_branches(commands)


def attach_branches(commands: list[Command]) -> list[Command]:
    result: list[Command] = []
    for command in commands:
        if command.block is not None:
            command.block = attach_branches(command.block)
        if command.name in ("elsif", "else"):
            previous = result[-1] if result else None
            if previous is None or previous.name != "if" or (
                previous.branches and previous.branches[-1].name == "else"
            ):
                raise SieveError(
                    line=command.line, column=command.column,
                    reason=f"{command.name} without a preceding if",
                )
            previous.branches.append(command)
            continue
        result.append(command)
    return result
