"""Errors a user can act on.

Library code raises these with a message that names what was wrong (the file,
the field, the URL); the ``hftmm`` CLI prints the message as one line, without a
traceback, and exits non-zero. Everything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class HftmmError(Exception):
    """Base of the errors the CLI reports as one line (exit status 2)."""


class DataError(HftmmError, ValueError):
    """Input data is missing, corrupt or unusable; the message names the file or folder."""


class ConnectError(HftmmError, ConnectionError):
    """A service could not be reached (nothing listening, refused, DNS); names the URL."""
