"""Errors an organiser can cause with a source extract.

Messages name the file, the column or the line and the fix, never a cell value:
they end up on the terminal and in logs outside the secure zone.
"""

from __future__ import annotations


class SourceError(Exception):
    """A source extract that cannot be read as declared; the message says how to fix it."""

    hackgap_user_error = True
