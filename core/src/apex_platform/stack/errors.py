"""The one error the embedded stack raises on purpose."""

from __future__ import annotations

from apex_platform.errors import ApexError


class StackError(ApexError):
    """An embedded server could not start, answer or stop.

    The message names the service, the setting to change where one applies, and
    the tail of the server's log file, so the user can act without digging.
    """
