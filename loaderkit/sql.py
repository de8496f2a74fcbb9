"""What loaderkit reads of a SQL filter itself, without an engine: its tokens.

Lance parses a filter as the WHERE clause of one statement and keeps the first
complete expression, ignoring whatever follows it: `a > 1) OR (1=1` runs as
`a > 1`, silently. The engine tells whether it read a filter to its end
(binding.py); these tokens say where it could have stopped, and catch offline
(lint) what no single expression holds: a `)` that closes nothing, a `;` with
more after it. Strings, quoted names and comments are single tokens, so nothing
inside them counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
      '(?:[^']|'')*'?          # a string ('' is a quote inside it); unterminated: to the end
    | "(?:[^"]|"")*"?          # a quoted name
    | `[^`]*`?                 # a quoted name, Lance's other quote
    | --[^\n]*                 # a comment to the end of the line
    | /\*.*?(?:\*/|\Z)         # a block comment
    | \w+                      # a word: a name, a keyword, a number
    | \S                       # anything else: an operator, a bracket, a separator
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str

    @property
    def is_comment(self) -> bool:
        return self.text.startswith(("--", "/*"))


def tokens(text: str) -> list[Token]:
    """The tokens of `text`, comments included, in order."""
    return [Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def placeholder(text: str) -> int | None:
    """The offset of the first `$` outside strings, quoted names and comments, or None.

    Lance reads `$1` or `${...}` as a query parameter, which nothing binds in a filter or a
    column expression: its planner stops on an internal error (a Rust panic, printed on
    stderr, and for a column expression raised past `except Exception`), so ask it nothing
    with one."""
    return next((t.start for t in tokens(text) if t.text == "$"), None)


def stray(text: str) -> tuple[int, str] | None:
    """(offset, what) of the first token no single expression can hold, or None: a `)` that
    closes no `(`, or a `;` followed by more than comments. (A trailing `;` ends the
    statement the filter is part of, and changes nothing.)"""
    depth = 0
    code = [t for t in tokens(text) if not t.is_comment]
    for index, token in enumerate(code):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
            if depth < 0:
                return token.start, "a ')' that closes no '('"
        elif token.text == ";" and any(t.text != ";" for t in code[index + 1:]):
            return token.start, "a ';' that ends the expression before the text after it"
    return None
