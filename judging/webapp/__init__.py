"""The judge page: a FastAPI app run by the hub as its service "judge" (see app.py)."""

from judging.webapp.app import create_app

__all__ = ["create_app"]
