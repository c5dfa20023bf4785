"""Java regular expressions (Spark's RegexTokenizer patterns) run with Python's :mod:`re`.

Most Java syntax means the same in Python. What does not, and is translated:

- ``\\p{X}`` / ``\\P{X}`` / ``\\pX``: Unicode general categories (``L``, ``Lu``, ``N``, ``Nd``,
  ``P``, ``Zs`` …, also as ``IsL`` / ``gc=L``) and Java's ASCII POSIX classes (``Alpha``,
  ``Digit``, ``Alnum``, ``Punct``, ``Space`` …), expanded into character ranges (Python's
  Unicode database may be a version newer than the JVM's);
- ``\\Q…\\E`` quoting, ``\\z``, ``\\Z``, ``\\h``, named groups ``(?<name>…)`` and ``\\k<name>``.

Java's ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII-only by default, so patterns compile with
:data:`re.ASCII`. Anything else Python cannot honour (class intersections ``&&``, nested
classes, other ``\\p{…}`` properties, syntax :mod:`re` rejects) is a
:class:`~spark_models.exceptions.NotSupportedError` naming the node and the pattern.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

from spark_models.exceptions import NotSupportedError

_POSIX = {  # java.util.regex.Pattern's POSIX classes (US-ASCII only)
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7f", "Alpha": "a-zA-Z", "Digit": "0-9", "Alnum": "a-zA-Z0-9",
    "Punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), "Blank": " \\t", "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F", "Space": " \\t\\n\\x0b\\f\\r",
}
_POSIX["Graph"] = _POSIX["Alnum"] + _POSIX["Punct"]
_POSIX["Print"] = _POSIX["Graph"] + " "
_HORIZONTAL_SPACE = " \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"


class _Unsupported(Exception):
    pass


def _escape(code: int) -> str:
    return f"\\U{code:08x}" if code > 0xFFFF else f"\\u{code:04x}"


@functools.lru_cache(maxsize=None)
def _category_ranges(category: str) -> str:
    """Character-class ranges of every code point whose general category starts with ``category``."""
    ranges, start, prev = [], None, None
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith(category):
            if start is None:
                start = code
            prev = code
        elif start is not None:
            ranges.append(_escape(start) if start == prev else f"{_escape(start)}-{_escape(prev)}")
            start = None
    if start is not None:
        ranges.append(f"{_escape(start)}-{_escape(prev)}")
    return "".join(ranges)


def _property(original: str) -> str:
    name = original
    for prefix in ("Is", "gc=", "general_category="):
        if name.startswith(prefix) and name[len(prefix):] not in _POSIX:
            name = name[len(prefix):]
    if name in _POSIX:
        return _POSIX[name]
    if 1 <= len(name) <= 2 and name[0] in "LMNPSZC" and (len(name) == 1 or name.isalpha()):
        ranges = _category_ranges(name)
        if ranges:
            return ranges
    raise _Unsupported(f"the property \\p{{{original}}}")


def _property_at(pattern: str, i: int) -> tuple[str, int]:
    """The property name after ``\\p`` at ``i`` and the index after it."""
    if i < len(pattern) and pattern[i] == "{":
        end = pattern.find("}", i)
        if end < 0:
            raise _Unsupported("an unterminated \\p{")
        return pattern[i + 1:end], end + 1
    if i < len(pattern):
        return pattern[i], i + 1
    raise _Unsupported("a dangling \\p")


def _escape_at(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Python text for the escape starting at ``pattern[i] == '\\\\'``, and the index after it."""
    letter = pattern[i + 1] if i + 1 < len(pattern) else ""
    if letter in ("p", "P"):
        name, end = _property_at(pattern, i + 2)
        ranges = _property(name)
        if in_class and letter == "P":
            raise _Unsupported("\\P{...} inside a character class")
        return (ranges if in_class else f"[{'^' if letter == 'P' else ''}{ranges}]"), end
    if letter == "Q":
        end = pattern.find("\\E", i + 2)
        end = len(pattern) if end < 0 else end
        return re.escape(pattern[i + 2:end]), min(end + 2, len(pattern))
    if letter == "h":
        return (_HORIZONTAL_SPACE if in_class else f"[{_HORIZONTAL_SPACE}]"), i + 2
    if not in_class and letter in ("z", "Z"):
        return ("\\Z" if letter == "z" else "(?=\\n?\\Z)"), i + 2
    if not in_class and letter == "k" and pattern.startswith("<", i + 2):  # \k<name> back-reference
        end = pattern.find(">", i + 3)
        if end > 0:
            return f"(?P={pattern[i + 3:end]})", end + 1
    return pattern[i:i + 2], i + 2


def translate(pattern: str) -> str:
    """``pattern`` (Java syntax) in Python's :mod:`re` syntax; raises ``_Unsupported``."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            text, i = _escape_at(pattern, i, in_class)
            out.append(text)
            continue
        if in_class and c == "[":
            raise _Unsupported("a nested character class")
        if in_class and pattern.startswith("&&", i):
            raise _Unsupported("a character class intersection (&&)")
        if not in_class and pattern.startswith("(?<", i) and pattern[i + 3:i + 4].isalpha():
            out.append("(?P<")  # a named group (?<name>…)
            i += 3
            continue
        if c == "[" and not in_class:
            in_class = True
            start = i + 2 if pattern.startswith("[^", i) else i + 1
            if pattern.startswith("]", start):  # a leading ']' is a literal, as in Python
                out.append(pattern[i:start + 1])
                i = start + 1
                continue
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def compile_java(pattern: str, node: str) -> re.Pattern:
    """``pattern`` compiled with Java's semantics, or a clear error naming ``node``."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except (_Unsupported, re.error) as e:
        raise NotSupportedError(
            f"MLeap node {node!r}: the Java regular expression {pattern!r} cannot be run in Python ({e})"
        ) from None
