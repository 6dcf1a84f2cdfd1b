"""`hackgap-submit`: check and record a team's submission from inside its sandbox.

Standalone on purpose (stdlib + nbformat only): it is installed in the single-user
environment, where hackgap itself is not. A team puts ONE notebook (and the files it writes
to `outputs/`) in `submission/`; this checks the notebook is valid, prints what will be
submitted with its sha256, and records the time in `submission/.submitted.json`. Running it
again replaces the record: the last submission before the deadline counts. The names below
match sandboxes/layout.py (SUBMISSION_DIR, OUTPUTS_DIR, SUBMITTED_RECORD).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

SUBMISSION_DIR = "submission"
OUTPUTS_DIR = "outputs"
SUBMITTED_RECORD = ".submitted.json"
MAX_FILE_BYTES = 16 * 1024 * 1024  # OpenSAFELY's release limit per file


class SubmitError(Exception):
    """A submission that cannot be accepted as it is; the message says how to fix it."""

    hackgap_user_error = True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def submission_files(folder: Path) -> list[Path]:
    """Every file of a submission (notebook + outputs/), sorted, without the record itself."""
    files = []
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.as_posix() != SUBMITTED_RECORD:
            if any(part.startswith(".") for part in rel.parts):
                continue  # .ipynb_checkpoints and other hidden clutter are not submitted
            files.append(path)
    return files


def files_digest(folder: Path, files: list[Path]) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}


def submission_hash(digests: dict[str, str]) -> str:
    """One hash for the whole submission: sha256 of its `sha256sum`-style listing."""
    listing = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def find_notebook(folder: Path) -> Path:
    """The one notebook directly in submission/; SubmitError naming the problem otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmitError(
            f"{folder} does not exist; create it and put your notebook in it "
            f"(one .ipynb file, plus the files it writes to {OUTPUTS_DIR}/)."
        )
    notebooks = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file())
    if not notebooks:
        raise SubmitError(
            f"{folder} holds no notebook; copy the one notebook you submit (.ipynb) into it."
        )
    if len(notebooks) > 1:
        raise SubmitError(
            f"{folder} holds {len(notebooks)} notebooks ({', '.join(notebooks)}); keep exactly "
            "one there and move the others out."
        )
    return folder / notebooks[0]


def check_notebook(path: Path) -> int:
    """Validate against the notebook format; return the number of code cells."""
    import nbformat

    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise SubmitError(
            f"{path.name} is not UTF-8 text; save it again from JupyterLab."
        ) from None
    except json.JSONDecodeError as exc:
        raise SubmitError(
            f"{path.name} is not valid notebook JSON (line {exc.lineno}); save it again from "
            "JupyterLab or restore it from a checkpoint."
        ) from None
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for a broken structure
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise SubmitError(
            f"{path.name} is not a valid Jupyter notebook ({reason}); save it again from "
            "JupyterLab."
        ) from None
    del data
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        raise SubmitError(f"{path.name} has no code cells; submit the notebook with your analysis.")
    return len(code)


def check_sizes(folder: Path, files: list[Path]) -> None:
    for path in files:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SubmitError(
                f"{path.relative_to(folder)} is {path.stat().st_size / 1e6:.1f} MB, above the "
                f"{MAX_FILE_BYTES // 2**20} MB limit per file; write a smaller summary instead."
            )


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def submit(folder: Path, now: dt.datetime | None = None) -> dict:
    """Check the submission in `folder` and record it; return the record written."""
    folder = Path(folder)
    notebook = find_notebook(folder)
    cells = check_notebook(notebook)
    files = submission_files(folder)
    check_sizes(folder, files)
    digests = files_digest(folder, files)
    now = now or dt.datetime.now(dt.UTC)
    record = {
        "notebook": notebook.name,
        "notebook_sha256": digests[notebook.name],
        "code_cells": cells,
        "files": digests,
        "sha256": submission_hash(digests),
        "submitted_at": now.isoformat(timespec="seconds"),
    }
    try:
        write_json_atomic(folder / SUBMITTED_RECORD, record)
    except PermissionError:
        raise SubmitError(
            f"{folder} is read-only: submissions are frozen (the deadline has passed)."
        ) from None
    return record


def locate(arg: str | None) -> Path:
    """submission/ of the workspace given, of $HOME, or of the nearest parent holding one."""
    if arg:
        path = Path(arg).expanduser()
        return path if path.name == SUBMISSION_DIR else path / SUBMISSION_DIR
    here = Path.cwd()
    for base in (here, *here.parents):
        if (base / SUBMISSION_DIR).is_dir():
            return base / SUBMISSION_DIR
    return Path.home() / SUBMISSION_DIR


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: hackgap-submit [WORKSPACE]\n\n" + __doc__.split("\n\n")[1])
        return 0
    folder = locate(args[0] if args else None)
    try:
        record = submit(folder)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Submitted {folder}:")
    for name, digest in record["files"].items():
        print(f"  {name}  sha256 {digest}")
    print(f"submission sha256 {record['sha256']}")
    print(f"recorded at {record['submitted_at']} (UTC); submit again any time before the deadline.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
