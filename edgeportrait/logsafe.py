"""Text from outside (ids, topics, keys, file names) made safe to log or print.

A broker client chooses capture ids and settings keys, a user chooses file
names; any of them may hold a newline, which would forge a second log line
under systemd (one stdout line is one journal entry), or an escape sequence
that repaints the operator's terminal. :func:`shown` escapes such characters
(``\\n``, ``\\x1b``, ``\\u2028``...) and caps the length; :class:`SafeFormatter`
applies the same escaping to every log message, so a call site that forgets
:func:`shown` still cannot write a forged line.
"""

from __future__ import annotations

import logging
import re

MAX_SHOWN = 200

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with every non-printable character (controls, line separators, bidi overrides) escaped."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c.isprintable():
            out.append(c)
        elif c in _NAMED:
            out.append(_NAMED[c])
        else:
            n = ord(c)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
    return "".join(out)


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` (text, bytes, a path...) as one safe line of at most ``limit`` characters."""
    raw = bytes(value).decode("utf-8", "backslashreplace") if isinstance(value, (bytes, bytearray)) else str(value)
    text = escape(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# scheme://userinfo@ anywhere in a text; userinfo stops at the first '/' or '@' (a password's own
# '/' and '@' are percent-encoded in a valid URL)
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


def redact(text: str) -> str:
    """``text`` with the user and password of every URL in it hidden: ``rtsp://user:pass@host``
    becomes ``rtsp://***@host`` — for a camera source, or an error message quoting one."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


class SafeFormatter(logging.Formatter):
    """A formatter whose messages are always one line: control characters in them are escaped.

    Only the message is escaped; a traceback appended by ``logger.exception``
    keeps its own line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)
