"""Errors that reach the user as one line and an exit code, never a traceback."""

from __future__ import annotations

EX_OK = 0
EX_FATAL = 1
EX_USAGE = 2  # also "some inputs unreadable" for process/segment
EX_CONFIG = 78  # sysexits.h EX_CONFIG; systemd's RestartPreventExitStatus=78 stops a restart loop


class UserError(Exception):
    """A mistake of the user's (a flag, a file, a value): printed as one line on stderr."""

    exit_code = EX_USAGE


class InputError(UserError):
    """One input (image, file) could not be used; batch commands report it and go on."""


class ConfigError(UserError):
    """The configuration is invalid; ``lines`` holds one message per problem."""

    exit_code = EX_CONFIG

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class FatalError(Exception):
    """Something outside the user's control broke (model missing, device failed)."""

    exit_code = EX_FATAL


class Refusal(Exception):
    """A request the daemon refuses or could not carry out, answered (not raised to the top).

    ``code`` is the machine-readable reason (the contract's ``B/error`` codes);
    ``detail`` is for people; ``request_id`` the id of the command or capture.
    """

    MAX_DETAIL_CHARS = 500

    def __init__(self, code: str, detail: str, request_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail[: self.MAX_DETAIL_CHARS]
        self.command_id = request_id
