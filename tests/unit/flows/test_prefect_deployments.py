"""infra/prefect.yaml: valid for Prefect 3.8.8, and every entrypoint that exists is a flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import Flow, load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[3]
PREFECT_YAML = REPO / "infra" / "prefect.yaml"
EXPECTED = {
    "ingest": "flows/ingest.py:ingest_flow",
    "link": "flows/link.py:link_flow",
    "synthesize": "flows/synthesize.py:synthesize_flow",
    "review-freeze": "flows/review.py:review_freeze_flow",
    "review-rerun": "flows/review.py:review_rerun_flow",
    "review-verify": "flows/review.py:review_verify_flow",
}
# Deployments that read real rows carry the secure-zone tag (and only those).
SECURE_ZONE = {"ingest", "link", "synthesize", "review-verify"}


def _deployments() -> dict[str, dict]:
    raw = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    return {d["name"]: d for d in raw["deployments"]}


def test_file_validates_against_prefects_own_model() -> None:
    raw = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    model = PrefectYamlModel.model_validate(raw)
    assert model.prefect_version == "3.8.8"
    assert sorted(d.name for d in model.deployments) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deployment_fields(name: str) -> None:
    deployment = _deployments()[name]
    assert deployment["entrypoint"] == EXPECTED[name]
    assert deployment["work_pool"]["name"] == "hackgap-process"
    assert deployment["parameters"] == {"event_path": "{{ $HACKGAP_EVENT_DIR }}"}
    assert ("secure-zone" in deployment["tags"]) == (name in SECURE_ZONE)
    assert deployment["description"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entrypoint_is_a_prefect_flow_taking_the_parameters(name: str, monkeypatch) -> None:
    entrypoint = _deployments()[name]["entrypoint"]
    path = entrypoint.split(":")[0]
    if not (REPO / path).is_file():
        pytest.skip(f"{path} is not written yet, so {entrypoint} cannot be checked")
    monkeypatch.chdir(REPO)  # `prefect deploy` resolves entrypoints from the repo root
    flow = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
    assert isinstance(flow, Flow), f"{entrypoint} is not decorated with @flow"
    accepted = set(flow.parameters.properties)
    required = set(flow.parameters.required or ())
    given = set(_deployments()[name]["parameters"])
    assert required <= given, f"{entrypoint} needs parameters {required - given}"
    assert given <= accepted, f"{entrypoint} does not accept {given - accepted}"
