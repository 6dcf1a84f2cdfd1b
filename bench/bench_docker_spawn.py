"""Team containers started at once: time until every JupyterLab answers, against one.

1, 10 and 30 team containers (quick: 1 and 10) are started concurrently with the settings
the spawner uses (`sandboxes.docker.run_team_container`: image, internal network, limits,
volume, read-only twin); the clock stops when every server's /api answers over the event
network. Target from the issue: 30 within 6x one. Also reported: memory per idle team
container (cgroup usage without page cache, after the servers settle), the no-op image
rebuild time and, in the full run, the image build time from an empty cache (debootstrap,
pip download, docker build; HACKGAP_BENCH_SKIP_COLD_BUILD=1 leaves it out).

Starting JupyterLab is CPU-bound (about 2.4 CPU seconds, mostly imports), so n concurrent
starts cannot finish before n x 2.4 / cores seconds: the notes give that floor as a ratio.
On 2 cores the floor for 30 is about 12-15x; the 6x target needs 5 or more free cores.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from bench.harness import Result, timed
from sandboxes import docker as sd
from sandboxes import image


def _spawn_all(client, event: str, sandbox, teams: list[str], twin: Path) -> float:
    """Seconds from the first start until every team's server answers."""
    env = {"JUPYTER_TOKEN": uuid.uuid4().hex}
    sd.ensure_network(client, event, sandbox)  # made once when the hub config is rendered
    t0 = time.perf_counter()

    def one(team: str) -> None:
        container = sd.run_team_container(
            client, event, sandbox, team, twin_dir=twin, environment=env,
            command=sd.server_command(),
        )  # fmt: skip
        ip = sd.container_ip(container, sd.network_name(event, sandbox))
        sd.wait_until_answers(f"http://{ip}:{sd.PORT}/api", timeout=600)

    with ThreadPoolExecutor(max_workers=len(teams)) as pool:
        list(pool.map(one, teams))
    return time.perf_counter() - t0


def _cpu_seconds(container_id: str) -> float | None:
    """CPU time the container has used (cgroup v1 cpuacct or v2 cpu.stat)."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.is_file():
        return int(v1.read_text()) / 1e9
    for base in (
        f"/sys/fs/cgroup/docker/{container_id}",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope",
    ):
        stat = Path(base, "cpu.stat")
        if stat.is_file():
            fields = dict(line.split() for line in stat.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    return None


def _idle_mib(client, event: str, teams: list[str]) -> float:
    usages = []
    for team in teams:
        stats = client.containers.get(sd.container_name(event, team)).stats(stream=False)
        mem = stats["memory_stats"]
        cache = mem.get("stats", {}).get(
            "total_inactive_file", mem.get("stats", {}).get("cache", 0)
        )
        usages.append((mem["usage"] - cache) / 2**20)
    return sum(usages) / len(usages)


def _clean(client, event: str, sandbox, teams: list[str]) -> None:
    for team in teams:
        sd.remove_team(event, team, client=client)
    sd.teardown_event(event, sandbox, client)


def _build_from_empty_cache(client) -> float:
    """Full image build with a fresh cache dir and no base image in the engine."""
    previous = os.environ.get("HACKGAP_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-image-cache-") as cache:
        os.environ["HACKGAP_CACHE_DIR"] = cache
        try:
            if image.image_exists(client, image.base_tag()):
                client.images.remove(image.base_tag())
            seconds, _ = timed(image.build, force=True, say=lambda m: None)
        finally:
            if previous is None:
                os.environ.pop("HACKGAP_CACHE_DIR", None)
            else:
                os.environ["HACKGAP_CACHE_DIR"] = previous
    return seconds


def run(quick: bool) -> list[Result]:
    client = sd.engine()
    results = []
    if not quick and not os.environ.get("HACKGAP_BENCH_SKIP_COLD_BUILD"):
        first = _build_from_empty_cache(client)
        results.append(Result("sandbox image build, empty cache", first, "s"))
    noop, built = timed(image.build, say=lambda m: None)
    results.append(
        Result("sandbox image rebuild, inputs unchanged", noop, "s", notes=f"built={built.built}")
    )
    sandbox = SimpleNamespace(
        image=built.tag, cpu_limit=1.0, mem_limit="1G", start_timeout=300, network=None
    )
    sizes = (1, 10) if quick else (1, 10, 30)
    baseline = None
    cpu = None
    with tempfile.TemporaryDirectory(prefix="bench-twin-") as twin:
        Path(twin, "twin.parquet").write_bytes(b"")
        os.chmod(twin, 0o755)
        for n in sizes:
            event = f"hgb-{uuid.uuid4().hex[:6]}"
            teams = [f"team{i:02d}" for i in range(n)]
            try:
                seconds = _spawn_all(client, event, sandbox, teams, Path(twin))
                if n == 1:
                    cid = client.containers.get(sd.container_name(event, teams[0])).id
                    cpu = _cpu_seconds(cid)
                if n == max(sizes):
                    time.sleep(15)  # let the servers settle before reading their memory
                    per_team = _idle_mib(client, event, teams)
                    results.append(
                        Result(f"idle team container memory ({n} running)", per_team, "MiB")
                    )
            finally:
                _clean(client, event, sandbox, teams)
            if baseline is None:
                baseline = seconds
                note = f"{cpu:.1f} CPU s per start" if cpu else ""
                results.append(
                    Result("1 team container: until JupyterLab answers", seconds, notes=note)
                )
            else:
                # Starting JupyterLab is CPU-bound: n starts need at least n x cpu / cores.
                floor = n * cpu / (os.cpu_count() or 1) / baseline if cpu else None
                results.append(
                    Result(
                        f"{n} team containers at once: until all answer",
                        seconds,
                        baseline=baseline,
                        target_ratio=6.0 if n == 30 else None,
                        notes=f"{os.cpu_count()} cores, direct (spawner's settings)"
                        + (f"; CPU-bound floor {floor:.1f}x" if floor else ""),
                    )
                )
    return results
