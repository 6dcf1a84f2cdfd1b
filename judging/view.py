"""What judges see of one submission: the only writer of layout.judge_view_dir(workdir, team).

Files (see /work/notes/INTERFACES.md and docs): twin.ipynb (executed on the twin),
rerun.json, twin_outputs/<name>, released/<name> (airlock-approved real-data outputs only)
and view.json, written last. Everything is rebuilt from the review folder each time, so a
rebuild after a kill gives the same folder. The executed real-data notebook never comes here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from judging.freeze import write_json

VIEW_FILE = "view.json"


def _sync(src_files: dict[str, Path], dest: Path) -> None:
    """Make `dest` hold exactly `src_files` (relative name -> source path)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, src in src_files.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.chmod(0o644)
        tmp.replace(target)
    for path in sorted(dest.rglob("*"), reverse=True):
        rel = path.relative_to(dest).as_posix()
        if path.is_file() and rel not in src_files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _real_status(name: str, statuses: dict, verification: str) -> str:
    if verification == "not requested":
        return "not requested"
    if name in statuses:
        return statuses[name] if statuses[name] in ("released", "pending") else "withheld"
    return "withheld" if verification == "done" else "pending"


def write_view(
    view_dir: Path,
    *,
    team: str,
    challenge: str | None,
    frozen: dict,
    rerun_dir: Path | None,
    real_dir: Path | None,
    airlock_entries: list[dict],
    verification: str,
) -> dict:
    """Rebuild one team's judge view; return view.json's content."""
    view_dir = Path(view_dir)
    view_dir.mkdir(parents=True, exist_ok=True)
    view_dir.chmod(0o755)
    rerun = None
    twin_names: list[str] = []
    if rerun_dir is not None and (rerun_dir / "result.json").is_file():
        rerun = json.loads((rerun_dir / "result.json").read_text(encoding="utf-8"))
        twin_names = list(rerun.get("outputs", []))
        notebook = rerun_dir / "executed.ipynb"
        if notebook.is_file():
            _sync({"twin.ipynb": notebook}, view_dir / ".twin-nb")
            (view_dir / ".twin-nb" / "twin.ipynb").replace(view_dir / "twin.ipynb")
            shutil.rmtree(view_dir / ".twin-nb", ignore_errors=True)
        write_json(view_dir / "rerun.json", {**rerun, "team": team})
    _sync({n: rerun_dir / "outputs" / n for n in twin_names}, view_dir / "twin_outputs")
    released = {
        e["name"]: real_dir / "outputs" / e["name"]
        for e in airlock_entries
        if e.get("status") == "released" and real_dir is not None
    }
    _sync(released, view_dir / "released")
    real_status = {e["name"]: e.get("status") for e in airlock_entries}
    names = sorted(set(twin_names) | set(real_status))
    outputs = []
    for name in names:
        outputs.append(
            {
                "name": name,
                "twin": f"twin_outputs/{name}" if name in twin_names else None,
                "real": f"released/{name}" if name in released else None,
                "real_status": _real_status(name, real_status, verification),
            }
        )
    view = {
        "team": team,
        "challenge": challenge,
        "submitted_at": frozen.get("submitted_at") or frozen.get("frozen_at"),
        "sha256": frozen.get("sha256"),
        "notebook": "twin.ipynb" if (view_dir / "twin.ipynb").is_file() else None,
        "rerun": {
            "status": rerun.get("status") if rerun else "not run",
            "seconds": rerun.get("seconds") if rerun else None,
            "message": rerun.get("message", "") if rerun else "",
        },
        "verification": verification,
        "outputs": outputs,
    }
    write_json(view_dir / VIEW_FILE, view)
    (view_dir / VIEW_FILE).chmod(0o644)
    return view
