"""How a CLI command runs flows: against the event's services, with a quiet console.

Prefect reads its settings when first imported and prints every flow/task log line
and every exception traceback to the console. The CLI shows its own progress and
turns user errors into one sentence, so here we point Prefect at the event's
server (even when it was imported earlier), keep its console to warnings, and strip
tracebacks of user errors from its log records (the message stays, for the UI).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_QUIET_LOGGERS = ("urllib3.connectionpool",)  # retry chatter while a service starts


def is_user_error(exc: BaseException | None) -> bool:
    """True for exceptions the user can fix (class sets `hackgap_user_error`)."""
    return bool(exc is not None and getattr(type(exc), "hackgap_user_error", False))


class _DropUserErrorTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_user_error(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        return True


def use_services(workdir: Path) -> dict[str, str]:
    """Export the event's service environment and make an imported Prefect see it."""
    from flows import services

    env = services.service_env(workdir)
    os.environ.update(env)
    if "prefect.context" in sys.modules:
        sys.modules["prefect.context"].refresh_global_settings_context()
    return env


def quiet_console() -> None:
    """Keep library chatter off the CLI's console; keep warnings and errors."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    import prefect.main  # noqa: F401  (configures Prefect logging, so we can adjust it)
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(logging.WARNING)
    strip = _DropUserErrorTracebacks()
    for name in (
        "prefect.flow_runs",
        "prefect.task_runs",
        "prefect.flow_engine",
        "prefect.task_engine",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropUserErrorTracebacks) for f in logger.filters):
            logger.addFilter(strip)


def run_stage(
    event_dir, *, module: str, label: str, console, no_prefect: bool = False
) -> tuple[dict, bool]:
    """Run a stage as its Prefect flow on the event's server, else as plain functions.

    `module` (e.g. "flows.link") provides `<label>_flow(event_path)` and
    `run_<label>(event_dir, store, progress=)`, and a `progress_hook` the flow calls.
    Returns the stage summary and whether Prefect ran it.
    """
    import importlib

    from flows.objectstore import ObjectStore

    use_services(event_dir.workdir)
    store = ObjectStore.for_workdir(event_dir.workdir)
    store.ping()
    stage = importlib.import_module(module)
    use_prefect = not no_prefect and bool(os.environ.get("PREFECT_API_URL"))
    if use_prefect:
        quiet_console()
    with console.status(f"{label}…") as status:

        def show(step: str) -> None:
            status.update(f"{label}: {step}…")
            console.print(f"  • {step}", highlight=False)

        stage.progress_hook = show
        try:
            if use_prefect:
                summary = getattr(stage, f"{label}_flow")(str(event_dir.root))
            else:
                summary = getattr(stage, f"run_{label}")(event_dir, store, progress=show).summary()
        finally:
            stage.progress_hook = None
    return summary, use_prefect
