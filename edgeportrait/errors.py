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
