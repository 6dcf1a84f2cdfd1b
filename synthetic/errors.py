"""Errors the organiser can cause while making a twin (bad input table, bad settings)."""

from __future__ import annotations


class TwinError(Exception):
    """A problem with the linked table or the twin settings that the organiser can fix.

    Messages name the column/setting and the fix, and never carry a real value.
    """

    hackgap_user_error = True
