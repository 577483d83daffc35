"""One exception type for everything a user can get wrong.

The CLI and the service catch :class:`ActionposeError` and show its message as a single line
(exit code 2 / HTTP 4xx); anything else is a bug in actionpose and is allowed to surface.
"""
from __future__ import annotations


class ActionposeError(Exception):
    """A user-facing error: the message names the file or field and the reason, on one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def where(path: object, detail: str) -> ActionposeError:
    """Build the canonical ``<path>: <reason>`` error."""
    return ActionposeError(f"{path}: {detail}")
