"""hackgap-submit: checks the one notebook in submission/, records hash and time."""

from __future__ import annotations

import json

import nbformat
import pytest

from judging import submit_tool


def _notebook(path, source="print(1)"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "submission" / "outputs").mkdir(parents=True)
    return tmp_path


def test_submit_records_hash_and_time_and_prints_them(workspace, capsys):
    _notebook(workspace / "submission" / "analysis.ipynb")
    (workspace / "submission" / "outputs" / "table.csv").write_text("a,count\nx,15\n")
    assert submit_tool.main([str(workspace)]) == 0
    record = json.loads((workspace / "submission" / ".submitted.json").read_text())
    assert record["notebook"] == "analysis.ipynb"
    assert set(record["files"]) == {"analysis.ipynb", "outputs/table.csv"}
    assert record["files"]["analysis.ipynb"] == submit_tool.sha256_file(
        workspace / "submission" / "analysis.ipynb"
    )
    out = capsys.readouterr().out
    assert record["sha256"] in out and "analysis.ipynb" in out


def test_resubmitting_replaces_the_record_and_the_hash_follows_the_content(workspace):
    nb = workspace / "submission" / "analysis.ipynb"
    _notebook(nb, "print(1)")
    first = submit_tool.submit(workspace / "submission")
    _notebook(nb, "print(2)")
    second = submit_tool.submit(workspace / "submission")
    assert first["sha256"] != second["sha256"]
    saved = json.loads((workspace / "submission" / ".submitted.json").read_text())
    assert saved["sha256"] == second["sha256"]


@pytest.mark.parametrize(
    ("setup", "sentence"),
    [
        (lambda s: None, "holds no notebook"),
        (lambda s: (_notebook(s / "a.ipynb"), _notebook(s / "b.ipynb")), "holds 2 notebooks"),
        (lambda s: (s / "a.ipynb").write_text("{not json"), "not valid notebook JSON"),
        (lambda s: (s / "a.ipynb").write_text('{"cells": 3}'), "not a valid Jupyter notebook"),
    ],
)
def test_bad_submissions_end_in_one_sentence(workspace, capsys, setup, sentence):
    setup(workspace / "submission")
    assert submit_tool.main([str(workspace)]) == 2
    err = capsys.readouterr().err.strip()
    assert sentence in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (workspace / "submission" / ".submitted.json").exists()
