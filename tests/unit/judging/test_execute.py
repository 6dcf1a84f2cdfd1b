"""The executor seam without isolation (no account given): fresh work tree, limits, results
reused by key, nothing left behind; parameters injected after the `parameters` cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from judging.execute import RunSpec, read_result, run_notebook
from judging.nbrun import INJECTED_TAG, inject_parameters

pytestmark = pytest.mark.slow  # real kernels (a few seconds each)


def _nb(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('TWIN_PATH = "x"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def _spec(tmp_path: Path, notebook: Path, key: str = "k", time_limit: int = 60) -> RunSpec:
    twin = tmp_path / "twin.parquet"
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(twin)
    return RunSpec(
        key=key,
        notebook=notebook,
        data={"twin.parquet": twin},
        result_dir=tmp_path / "result",
        runs_root=tmp_path / "runs",
        time_limit=time_limit,
        mem_limit=2**31,
    )


def test_parameters_go_right_after_the_parameters_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("TWIN_PATH = 'x'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(TWIN_PATH)"),
    ]
    inject_parameters(nb, {"TWIN_PATH": "/data/twin.parquet"})
    assert INJECTED_TAG in nb.cells[2].metadata["tags"]
    assert "TWIN_PATH = '/data/twin.parquet'" in nb.cells[2].source


def test_a_run_records_outputs_and_a_second_run_reuses_it(tmp_path):
    notebook = _nb(
        tmp_path / "nb.ipynb",
        "import pandas as pd\npd.read_parquet(TWIN_PATH).to_csv('outputs/t.csv')",
    )
    first = run_notebook(_spec(tmp_path, notebook))
    assert first.ok and first.outputs == ["t.csv"]
    assert (tmp_path / "result" / "outputs" / "t.csv").read_text().startswith(",a")
    assert (tmp_path / "result" / "executed.ipynb").is_file()
    assert list((tmp_path / "runs").iterdir()) == []  # the work tree is gone
    again = run_notebook(_spec(tmp_path, notebook))
    assert again == first  # same key: reused, not redone
    assert read_result(tmp_path / "result").key == "k"


def test_a_failing_cell_is_named_and_a_hanging_one_stopped(tmp_path):
    notebook = _nb(tmp_path / "nb.ipynb", "x = 1", "1 / 0", "print('never')")
    failed = run_notebook(_spec(tmp_path, notebook))
    assert failed.status == "failed" and failed.cell == 3 and failed.error == "ZeroDivisionError"
    hang = _nb(tmp_path / "hang.ipynb", "print('before')", "import time\ntime.sleep(600)")
    stopped = run_notebook(_spec(tmp_path, hang, key="h", time_limit=3))
    # stopped by the cell time limit (not the watchdog's kill past it): the cell is named
    assert stopped.status == "timeout" and stopped.cell == 3  # after parameters and print
    assert stopped.message == "code cell 3 ran past the time limit"
    assert _orphan_kernels() == []


def _orphan_kernels() -> list[int]:
    """Kernels whose connection file is gone: what a run would leave behind if it leaked."""
    import psutil

    orphans = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        gone = "-f" in cmd and not Path(cmd[cmd.index("-f") + 1]).exists()
        if "ipykernel_launcher" in cmd and gone:
            orphans.append(proc.pid)
    return orphans
