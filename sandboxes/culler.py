"""The idle culler as a hub service that waits for the event's end before it culls.

Culling stops servers mid-event (a known pain), so during the event nobody's server is
stopped: this process sleeps until `--not-before` (the event's end, epoch seconds) and then
becomes jupyterhub-idle-culler with the remaining arguments.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> None:
    not_before = 0.0
    rest = []
    for arg in argv:
        if arg.startswith("--not-before="):
            not_before = float(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    while (wait := not_before - time.time()) > 0:
        time.sleep(min(wait, 60))
    os.execv(sys.executable, [sys.executable, "-m", "jupyterhub_idle_culler", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
