"""`python -m judging.webapp`: run the judge page as the hub's managed service.

The hub sets JUPYTERHUB_SERVICE_URL (where to listen), JUPYTERHUB_SERVICE_PREFIX and the
OAuth settings; hackgap adds HACKGAP_WORKDIR (scores, event facts, judge views).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit


def main() -> None:
    import uvicorn

    from judging.webapp.app import create_app

    workdir = os.environ.get("HACKGAP_WORKDIR")
    url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if not workdir or not url:
        sys.exit(
            "The judge page runs as a JupyterHub service: HACKGAP_WORKDIR and "
            "JUPYTERHUB_SERVICE_URL must be set (start it with `hackgap services up`)."
        )
    parts = urlsplit(url)
    logging.basicConfig(level=logging.WARNING, format="[judge] %(levelname)s %(message)s")
    logging.getLogger("judging").setLevel(logging.INFO)
    app = create_app(Path(workdir))
    uvicorn.run(app, host=parts.hostname or "127.0.0.1", port=parts.port or 80,
                log_level="warning", proxy_headers=False)  # fmt: skip


if __name__ == "__main__":
    main()
