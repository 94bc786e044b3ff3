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
import threading
from collections.abc import Hashable

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


class Throttle:
    """Which occurrences of a repeating log message to write.

    A condition that goes on (a camera unplugged for a month, a frame consumer that
    fails 30 times a second, an absent broker) should show in the journal now and
    then, not at the rate it happens. :meth:`allow` counts one occurrence of ``key``
    (the message, or None where there is one kind) and is True for the first
    ``first`` occurrences and then for every ``every``-th (``every``, ``2*every``...);
    :meth:`suppressed` tells how many were held back since the last one allowed, and
    :meth:`reset` starts over once the condition has ended. At most ``max_keys`` keys
    are kept: past that every count starts over, so a stream of distinct messages
    cannot grow memory. Thread-safe.
    """

    def __init__(self, every: int, first: int = 1, max_keys: int = 64) -> None:
        if every < 1 or first < 0:
            raise ValueError("every must be at least 1, first at least 0")
        self.every = every
        self.first = first
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._counts: dict[Hashable, int] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable = None) -> bool:
        """Count an occurrence of ``key``; True if it is to be logged."""
        with self._lock:
            if key not in self._counts and len(self._counts) >= self.max_keys:
                self._counts.clear()
                self._held.clear()
            n = self._counts.get(key, 0) + 1
            self._counts[key] = n
            allowed = n <= self.first or n % self.every == 0
            self._held[key] = 0 if allowed else self._held.get(key, 0) + 1
            return allowed

    def count(self, key: Hashable = None) -> int:
        """Occurrences of ``key`` since the start or the last :meth:`reset`."""
        with self._lock:
            return self._counts.get(key, 0)

    def suppressed(self, key: Hashable = None) -> int:
        """Occurrences of ``key`` not allowed since the last one that was."""
        with self._lock:
            return self._held.get(key, 0)

    def reset(self) -> None:
        """Forget every count: the condition is over, its next occurrence is a first one again."""
        with self._lock:
            self._counts.clear()
            self._held.clear()


class SafeFormatter(logging.Formatter):
    """A formatter whose messages are always one line: control characters in them are escaped.

    Only the message is escaped; a traceback appended by ``logger.exception``
    keeps its own line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)
