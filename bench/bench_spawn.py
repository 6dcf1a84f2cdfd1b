"""Team servers on the local backend: spawn 1, 10 and 30 at once; memory; no-op provision.

One hub with 30 provisioned teams (one member each, a small twin). For each n the first n
teams' servers are started together through the hub API and timed until the hub reports
every one ready (it has reached the server); the ratio is against one team's spawn in the
same run (target: 30 within 6x, i.e. spawns overlap instead of queueing). Memory per team
is the RSS of each team's server process tree with 30 running. Then `provision` for the 30
existing teams, a no-op (target: under 2 s). Quick: 1 and 5 of 10 teams.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.harness import Result


def _stop_all(api, accounts: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(api.stop_server, accounts))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        users = api.users()
        servers = [(users[a].get("servers") or {}).get("") or {} for a in accounts]
        if not any(s.get("ready") or s.get("pending") for s in servers):
            return
        time.sleep(0.5)


def _rss_per_team(hub_port: int) -> list[float]:
    """MiB of each team server's process tree (server + kernels), found by its hub URL."""
    needle = f"127.0.0.1:{hub_port}/"
    trees = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except psutil.Error:
            continue
        if needle in env.get("JUPYTERHUB_API_URL", "") and env.get("JUPYTERHUB_USER", "").endswith(
            "-collab"
        ):
            try:
                procs = [proc, *proc.children(recursive=True)]
                trees.append(sum(p.memory_info().rss for p in procs) / 2**20)
            except psutil.Error:
                continue
    return trees


def run(quick: bool) -> list[Result]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_hub_event, publish_test_twin  # the hub tests' event helpers

    from flows import services
    from flows.event import load_event
    from flows.objectstore import ObjectStore
    from flows.provision import run_provision
    from sandboxes import layout
    from sandboxes.hubapi import HubAPI

    total, sizes = (10, (1, 5)) if quick else (30, (1, 10, 30))
    teams = {f"b{n:02d}": [f"p{n:02d}"] for n in range(total)}
    root = Path(tempfile.mkdtemp(prefix="hackgap-bench-spawn-", dir="/tmp"))
    root.chmod(0o711)
    event = make_hub_event(root / "event", teams, name="bench", judges=(), organisers=())
    event_dir = load_event(event)
    workdir = event_dir.workdir
    results: list[Result] = []
    try:
        services.up(workdir, s3=True, prefect=False)
        store = ObjectStore.for_workdir(workdir)
        publish_test_twin(store, "bench")
        services.hub_up(event_dir)
        run_provision(event_dir, store, start=False)
        hub = services.status(workdir).hub
        api = HubAPI(hub.api_url, services.hub_token(workdir))
        accounts = [layout.team_account(t) for t in sorted(teams)]
        one = None
        for n in sizes:
            _stop_all(api, accounts)
            t0 = time.perf_counter()
            states = api.start_and_wait(accounts[:n], timeout=600)
            wall = time.perf_counter() - t0
            ready = sum(s == "ready" for s in states.values())
            one = one or wall
            target = 6.0 if n == max(sizes) else None
            if ready < n and target is not None:
                target = 0.0  # some never answered: the target is missed whatever the time
            results.append(
                Result(
                    f"spawn {n} team server(s) at once: all ready",
                    wall,
                    "s",
                    baseline=one if n > 1 else None,
                    target_ratio=target,
                    notes=f"{ready}/{n} ready" + ("" if ready == n else " (the rest failed)"),
                )
            )
        rss = _rss_per_team(hub.hub_port)
        if rss:
            results.append(
                Result(
                    f"memory per running team ({len(rss)} running)",
                    sum(rss) / len(rss),
                    "MiB",
                    notes=f"min {min(rss):.0f}, max {max(rss):.0f} MiB (server, no kernel)",
                )
            )
        t0 = time.perf_counter()
        summary = run_provision(event_dir, store, start=False)
        noop = time.perf_counter() - t0
        results.append(
            Result(
                f"provision {total} existing teams (no-op)",
                noop,
                "s",
                baseline=2.0,
                target_ratio=1.0,
                notes=f"changes: {len(summary.changes)}; baseline = the 2 s target",
            )
        )
    finally:
        services.down(workdir)
        for team in teams:
            subprocess.run(["userdel", layout.team_system_user("", team)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return results
