"""Text checks shared by every entry point."""

from __future__ import annotations


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored: a Python str with lone surrogates (bytes decoded with
    ``errors="surrogateescape"``, as command-line arguments and file names are) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
