"""Errors of the review stage that an organiser can fix: one sentence each."""

from __future__ import annotations


class ReviewError(Exception):
    """A review step cannot go on as asked; the message names the thing and the fix."""

    hackgap_user_error = True
