"""`hackgap review ...`: freeze, re-run, verify, airlock, assign judges, leaderboard."""

from __future__ import annotations

import typer

app = typer.Typer(help="Review submissions and judge them.", no_args_is_help=True)

from flows.commands import judge as _judge  # noqa: E402  (assign, leaderboard, close-judging)

_judge.register(app)
