"""The one error class of the challenges room: a problem an organiser can fix in a pack."""

from __future__ import annotations


class ChallengeError(Exception):
    """A pack (or a statistic's input) is wrong in a way the organiser can fix.

    Each problem is one sentence naming the pack, file and field, and the fix.
    """

    hackgap_user_error = True

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(" ".join(self.problems))


def where(pack_id: str, file: str, field: str | None = None) -> str:
    """The prefix every pack problem starts with: "challenge 'x', file, field"."""
    return f"challenge '{pack_id}', {file}" + (f", {field}" if field else "")
