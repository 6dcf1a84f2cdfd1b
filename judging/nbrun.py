"""Execute one notebook: the driver process the executor starts afresh for every run.

`python -m judging.nbrun SPEC.json`. The driver is trusted code (hackgap's own environment,
started by the executor with a minimal environment); the notebook's kernel is not: it is
launched through `spec["kernel_prefix"]` (on a root host: no network, private /tmp, the
run's unprivileged account) and talks to the driver over Unix sockets only. The driver
writes the executed notebook and `result.json` into `spec["out_dir"]`, where the kernel's
account cannot write, so a notebook cannot forge its own result.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
KERNEL_NAME = "hackgap-run"


def inject_parameters(nb, params: dict) -> None:
    """Add a cell after the `parameters` cell (papermill's convention) setting `params`."""
    import nbformat

    if not params:
        return
    source = "# Parameters injected by hackgap review\n" + "".join(
        f"{name} = {value!r}\n" for name, value in params.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    at = next(
        (
            i + 1
            for i, c in enumerate(nb.cells)
            if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
        ),
        0,
    )
    nb.cells.insert(at, cell)


def write_kernelspec(spec: dict, root: Path) -> None:
    """A kernel spec whose argv is the sandbox prefix + the run's Python + ipykernel."""
    folder = root / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        *spec["kernel_prefix"],
        spec["python"],
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    kernelspec = {"argv": argv, "display_name": "hackgap run", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(kernelspec), encoding="utf-8")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _first_line(text: str, limit: int = 200) -> str:
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


def run(spec: dict) -> dict:
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    out = Path(spec["out_dir"])
    nb = nbformat.read(spec["notebook"], as_version=4)
    inject_parameters(nb, spec.get("params", {}))
    runtime = Path(spec["runtime_dir"])
    kernel_root = Path(tempfile.mkdtemp(prefix="kernelspec-", dir=out))
    write_kernelspec(spec, kernel_root)
    os.environ["JUPYTER_PATH"] = str(kernel_root)
    # async: with a blocking manager nbclient's output poll blocks its event loop, so a cell
    # past `timeout` was never stopped (the watchdog killed the driver 30 s later instead,
    # and the executed notebook was lost)
    km = AsyncKernelManager(
        kernel_name=KERNEL_NAME,
        transport="ipc",
        ip=str(runtime / "kernel"),
        connection_file=str(runtime / "connection.json"),
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=spec["time_limit"],
        startup_timeout=120,
        kernel_name=KERNEL_NAME,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": spec["cwd"]}},
    )
    result: dict = {"status": "ok", "cell": None, "error": None, "message": ""}
    started = time.monotonic()
    try:
        client.execute(cwd=spec["cwd"])
    except CellTimeoutError:
        index = _cell_number(nb, _started_unfinished)
        where = f"code cell {index}" if index else "a cell"
        result.update(status="timeout", cell=index, message=f"{where} ran past the time limit")
    except DeadKernelError:
        result.update(status="died", message="the kernel died (memory or a crash)")
    except CellExecutionError as exc:
        index = _cell_number(nb, _has_error)
        result.update(
            status="failed",
            cell=index,
            error=exc.ename,
            message=_first_line(f"{exc.ename}: {exc.evalue}"),
        )
    except Exception as exc:  # kernel would not start, broken notebook structure
        result.update(status="error", error=type(exc).__name__, message=_first_line(str(exc)))
    finally:
        _shutdown(km)  # nbclient leaves a kernel it did not create running
    result["seconds"] = round(time.monotonic() - started, 3)
    nbformat.write(nb, out / "executed.ipynb")
    _write_json(out / "result.json", result)
    return result


def _shutdown(km) -> None:
    from jupyter_core.utils import run_sync

    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # already dead, or never started
        pass


def _has_error(cell) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def _started_unfinished(cell) -> bool:
    timing = cell.get("metadata", {}).get("execution", {})  # nbclient's record_timing
    return "iopub.execute_input" in timing and "shell.execute_reply" not in timing


def _cell_number(nb, match) -> int | None:
    """1-based number of the first code cell `match` accepts (injected cell not counted)."""
    number = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or INJECTED_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        number += 1
        if match(cell):
            return number
    return None


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    run(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
