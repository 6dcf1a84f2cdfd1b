"""`hackgap demo-data` and `hackgap demo` (being built: issue 2)."""


def demo_data() -> None:
    """Write realistic demo source extracts."""
    raise SystemExit("demo-data is not built yet")


def demo() -> None:
    """Run the main job end to end on a demo event."""
    raise SystemExit("demo is not built yet")
