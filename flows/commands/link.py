"""`hackgap link` (being built: issue 3)."""


def link() -> None:
    """Link the source extracts inside the secure zone."""
    raise SystemExit("link is not built yet")
