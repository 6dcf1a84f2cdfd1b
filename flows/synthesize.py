"""The synthesize stage: linked table (secure) -> gated twin (open), thin over `synthetic/`.

Reads `secure/<event>/linked/analysis.parquet` (only once its `_COMPLETE` exists), makes a
candidate twin whose release files (twin.parquet, twin.csv) are written to the secure
temporary directory and judged as read back, and only if every gate check passes publishes
those same files (SHA-256 checked), codebook.md and report.html under
`open/twins/<event>/<version>/` (`_COMPLETE` last) and the fitted model under
`secure/<event>/models/<version>/model.pkl`. A failed gate publishes nothing and raises
TwinError naming each failed check and its figure.

Version: `v-` + the first 12 hex digits of the SHA-256 of twin.csv. The same seed, settings
and linked table give the same twin, hence the same version: re-running is a no-op rather
than a duplicate. The newest complete version is the one with the latest manifest `created`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from flows.event import EventDir, load_event
from flows.objectstore import ObjectStore
from flows.pipeline.audit import AuditLog
from synthetic.cart import Mapper
from synthetic.codebook import render_codebook
from synthetic.errors import TwinError
from synthetic.make import TwinBuild, make_twin
from synthetic.release import sha256
from synthetic.report import render_report
from synthetic.schema import TableSchema
from synthetic.settings import Thresholds, TwinSettings

SECURE, OPEN = "secure", "open"
SCHEMA_PATH = Path(__file__).with_name("schemas") / "analysis_table.yaml"
Progress = Callable[[str], None]
progress_hook: Progress | None = None  # set by the CLI so Prefect tasks can report on screen


@dataclass
class SynthesizeOutcome:
    """Figures only (no values): safe to print, log and return from a flow."""

    event: str
    version: str
    released: bool
    rows: int
    checks: list[dict[str, Any]] = field(default_factory=list)
    quality: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    prefix: str = ""

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_schema() -> TableSchema:
    return TableSchema.from_dict(yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8")))


def twin_settings(event_dir: EventDir) -> TwinSettings:
    """event.yaml's `twin:` block (already range-checked by pydantic) as synthetic settings."""
    twin = event_dir.event.twin
    return TwinSettings(
        synthesizer=twin.synthesizer,
        seed=event_dir.event.seed,
        epochs=twin.epochs,
        min_leaf=twin.fixed_min_leaf,
        max_depth=twin.max_depth,
        rows=twin.rows,
        thresholds=Thresholds(**twin.thresholds.model_dump()),
    )


DASK_PATIENCE = {
    "distributed.comm.timeouts.tcp": "300s",
    "distributed.comm.timeouts.connect": "60s",
}

# Dask's defaults suit many short tasks; the cluster hackgap starts itself runs one long tree
# fit per worker, and on a small machine every CPU second spent beside it delays the fit.
# Measured at 1,000,000 persons (2 workers fitting the same 4 trees, 3 runs): with Dask's
# defaults each worker spent 0.3-1.7 CPU s outside its fit (a statistical profiler sampling
# its stack 100 times a second, an event loop ticking 50 times), its fit faulted 4.5x the
# pages (glibc trimming every freed block, then faulting it in again) and the flow's process
# (scheduler, nannies) used 0.9-1.6 CPU s; the trees took 11.8 s (median) against 10.1 s
# with these settings, as in plain forked processes without Dask (10.1 s). An organiser's
# scheduler (twin.dask_address) keeps its own configuration.
LOCAL_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # glibc's default
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.worker.memory.monitor-interval": "1s",
}


def tree_map(workers: int, address: str | None = None) -> Mapper | None:
    """How the twin's trees are fitted: None (here, in this process) for one worker and no
    scheduler, else a `map` running them as Prefect tasks on Prefect's Dask task runner: a
    local cluster of `workers` processes, or the organiser's scheduler at `address`."""
    if workers <= 1 and not address:
        return None
    if address:
        _check_scheduler(address)

    def run(fn: Callable, data: Any, jobs: list) -> list:
        import dask
        import distributed  # noqa: F401  (adds its defaults to Dask's configuration)

        # a worker busy in a long tree fit (or on a crowded machine) may not answer within
        # Dask's 30 s; the scheduler then drops it and, with it, the scattered data
        with dask.config.set({**DASK_PATIENCE, **({} if address else LOCAL_CLUSTER)}):
            names = () if address else dask.config.get("distributed.nanny.pre-spawn-environ")
            with _environment_kept(names):
                return _fit_trees_flow(fn, data, jobs, workers, address)()

    return run


@contextmanager
def _environment_kept(names: Iterable[str]) -> Iterator[None]:
    """Put back this process's environment variables `names` as they were.

    A local cluster's nannies write Dask's pre-spawn settings (OMP_NUM_THREADS=1 and the
    other math libraries' thread counts) into the process that starts them, for their
    workers to inherit; the flow's later subprocesses (the gate's anonymeter run) and
    clusters would inherit them too.
    """
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_scheduler(address: str) -> None:
    """One sentence, not a traceback, when twin.dask_address does not answer as Dask."""
    import logging

    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        with Client(address, timeout=5, set_as_default=False) as client:
            client.scheduler_info()
    except (OSError, TimeoutError, ValueError) as exc:
        reason = type(exc).__name__
        raise TwinError(
            f"twin.dask_address: no Dask scheduler answers at {address} ({reason}); start one "
            "there (`dask scheduler`, workers able to reach this Prefect server) or remove "
            "twin.dask_address from event.yaml to fit on this machine."
        ) from None


# a fit task that finds no job and no end marker for this long gives up (its jobs are then
# fitted again): only a queue the scheduler lost, never a busy fit, waits this long
QUEUE_PATIENCE = 300
_DONE = -1  # the end marker: one per fit task, after the last job


def _fit_trees_flow(fn: Callable, data: Any, jobs: list, workers: int, address: str | None):
    """A Prefect flow on a DaskTaskRunner with one task per worker thread.

    The tasks take the jobs one at a time from a Dask queue, largest first, so a worker
    that finishes early takes the next job: a tree's real cost differs from its estimate
    (rows x predictors) by up to 4x either way, and fixed bundles left one of 2 workers idle
    for about 1 s of a 7 s fit at 1,000,000 persons. A task run costs 0.2-0.5 s of Prefect
    bookkeeping, so there is one per worker, not one per job. Jobs a lost worker took are
    fitted again. The real predictors are scattered to every worker once (a Dask future the
    tasks receive), not sent per task; the frame is a closure, never a flow parameter
    (Prefect would record parameters), and no result is persisted (the fitted trees hold
    real leaf values: secure zone, memory only)."""
    import logging

    from distributed import Queue
    from prefect import flow, task
    from prefect.cache_policies import NONE
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect_dask import DaskTaskRunner

    if address:
        runner = DaskTaskRunner(address=address)
    else:
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",  # no fixed port: clusters may run side by side
                "silence_logs": logging.ERROR,
            }
        )

    # Prefect ships the flow run's context, closure included, with every task, and Dask
    # tokenizes it by pickling: the flow holds the data only until it is scattered
    box = {"data": data}

    @task(name="fit-trees", cache_policy=NONE, persist_result=False)
    def fit_trees_task(shared: Any, queue: str) -> dict[int, Any]:
        return {i: fn(shared, jobs[i]) for i in _taken(queue)}

    @flow(name="fit-twin-trees", task_runner=runner, log_prints=False, persist_result=False)
    def fit_trees() -> list:
        client = FlowRunContext.get().task_runner.client
        tasks = max(1, sum(client.nthreads().values()))
        shared = client.scatter(box.pop("data"), broadcast=True, hash=False)
        queue = Queue(client=client)
        results: dict[int, Any] = {}
        todo = list(range(len(jobs)))  # jobs come largest first (CartSynthesizer.plan)
        try:
            while todo:
                for i in [*todo, *[_DONE] * tasks]:
                    queue.put(i)
                futures = [fit_trees_task.submit(shared, queue.name) for _ in range(tasks)]
                for future in futures:
                    results.update(future.result())
                if not any(i in results for i in todo):  # every task gave up: no progress
                    raise TwinError(
                        f"the Dask scheduler lost the fit's job queue ({len(todo)} of "
                        f"{len(jobs)} trees unfitted); restart it, or remove "
                        "twin.dask_address / set twin.workers: 1 to fit on this machine."
                    )
                todo = [i for i in todo if i not in results]
        finally:
            queue.close()
        return [results[i] for i in range(len(jobs))]

    def run() -> list:
        # a flow run's heartbeat thread sleeps in 1 s steps and is joined when the run ends,
        # which added 0-1 s to every fit; the stage's own flow run keeps its heartbeat
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            return fit_trees()

    return run


def _taken(name: str) -> Iterator[int]:
    """The job numbers a fit task takes from the Dask queue `name`, until an end marker."""
    from distributed import Queue

    queue = Queue(name)  # through the worker's client
    try:
        while True:
            try:
                i = queue.get(timeout=QUEUE_PATIENCE)
            except TimeoutError:
                return
            if i == _DONE:
                return
            yield i
    finally:
        queue.close()


def challenge_checks(event_dir: EventDir) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(fidelity checks, needed columns) per challenge of the event."""
    from challenges import load_packs

    packs = load_packs(event_dir.event.challenges, [event_dir.root / "challenges"])
    return {p.id: p.fidelity for p in packs}, {p.id: tuple(p.columns) for p in packs}


def read_linked(event_dir: EventDir, store: ObjectStore, audit: AuditLog) -> pd.DataFrame:
    prefix = f"{event_dir.event.name}/linked"
    if not store.is_complete(SECURE, prefix):
        raise TwinError(
            f"secure/{prefix}/analysis.parquet: no complete linked table yet; run "
            f"`hackgap link {event_dir.root}` first."
        )
    data = store.get_bytes(SECURE, f"{prefix}/analysis.parquet")
    audit.record(
        "read", SECURE, f"{prefix}/analysis.parquet", hashlib.sha256(data).hexdigest(), len(data)
    )
    return pd.read_parquet(io.BytesIO(data))


def failure_message(build: TwinBuild) -> str:
    """One sentence naming every failed check and by how much (figures only), and the
    setting that moves each kind of failure."""
    failures = build.gate.failures
    failed = "; ".join(c.sentence() for c in failures)
    return f"twin release gate: {failed}; nothing was published - {_remedy(build)}, and run again."


def _remedy(build: TwinBuild) -> str:
    """A privacy check asks for a coarser twin, quality and fidelity for a finer one; for
    cart the leaf floor moves both (`settings.min_leaf` is the floor the fit used, also when
    event.yaml left it to hackgap)."""
    settings = build.context.settings
    if settings.synthesizer != "cart":
        return (
            "adjust twin settings in event.yaml (synthesizer, epochs) or the challenge tolerances"
        )
    faithful = [c.name == "quality" or c.name.startswith("fidelity ") for c in build.gate.failures]
    fixes = []
    if not all(faithful):
        fixes.append(
            f"for a privacy check raise twin.min_leaf in event.yaml (now {settings.min_leaf}: "
            "each value is then drawn from more real pupils; docs/scale.md)"
        )
    if any(faithful):
        fixes.append(
            f"for quality or fidelity lower twin.min_leaf (now {settings.min_leaf}) or widen "
            "the challenge's tolerance"
        )
    return " and ".join(fixes)


def _twin_files(build: TwinBuild, event: str, settings: TwinSettings, tmp: Path) -> dict[str, Path]:
    """The judged twin files (unchanged since judging) plus the codebook and report."""
    for name, path in build.files.items():
        if sha256(path) != build.digests[name]:
            raise TwinError(
                f"{name} changed after the release gate judged it; nothing was published - "
                "run `hackgap synthesize` again."
            )
    twin = build.twin
    version = "v-" + build.digests["twin.csv"][:12]
    info = build.context.info
    (tmp / "codebook.md").write_text(
        render_codebook(
            event,
            version,
            build.context.schema,
            twin,
            info,
            settings,
            build.gate,
            redrawn=build.context.redrawn,
        ),
        encoding="utf-8",
    )
    (tmp / "report.html").write_text(
        render_report(
            event, version, build.context.schema, build.context.real, twin, info, build.gate
        ),
        encoding="utf-8",
    )
    (tmp / "VERSION").write_text(version, encoding="utf-8")
    return {
        **build.files,
        "codebook.md": tmp / "codebook.md",
        "report.html": tmp / "report.html",
    }


def run_synthesize(
    event_dir: EventDir, store: ObjectStore, progress: Progress | None = None, actor: str = ""
) -> SynthesizeOutcome:
    """The whole stage without Prefect: read, make, gate, and publish only if it passed."""
    say = progress or progress_hook or (lambda _m: None)
    ev = event_dir.event
    audit = AuditLog(store, ev.name, actor=actor, stage="synthesize")
    settings = twin_settings(event_dir)
    checks, required = challenge_checks(event_dir)
    say("reading the linked table")
    real = read_linked(event_dir, store, audit)
    secure_tmp = event_dir.workdir / "secure"
    secure_tmp.mkdir(parents=True, exist_ok=True)
    os.chmod(secure_tmp, 0o700)
    with tempfile.TemporaryDirectory(dir=secure_tmp) as tmp:
        build = make_twin(
            real,
            load_schema(),
            settings,
            checks,
            required,
            progress=say,
            workdir=Path(tmp),
            fit_map=tree_map(ev.twin.workers, ev.twin.dask_address),
        )
        return _release(build, event_dir, store, audit, Path(tmp), say)


def _release(
    build: TwinBuild,
    event_dir: EventDir,
    store: ObjectStore,
    audit: AuditLog,
    tmp: Path,
    say: Progress,
) -> SynthesizeOutcome:
    """Publish the judged files if every check passed (else raise, publishing nothing)."""
    ev, settings = event_dir.event, build.context.settings  # the settings the twin was made with
    outcome = SynthesizeOutcome(
        event=ev.name,
        version="",
        released=False,
        rows=len(build.twin),
        checks=[c.__dict__ for c in build.gate.checks],
        quality=build.gate.quality.overall if build.gate.quality else None,
        timings=build.timings,
    )
    if not build.gate.passed:
        raise TwinError(failure_message(build))
    say("writing the codebook and report")
    files = _twin_files(build, ev.name, settings, tmp)
    version = (tmp / "VERSION").read_text(encoding="utf-8")
    model_key = f"{ev.name}/models/{version}/model.pkl"
    model = build.fitted.to_bytes()
    digest = store.put_bytes(SECURE, model_key, model)
    audit.record("write", SECURE, model_key, digest, len(model))
    prefix = f"twins/{ev.name}/{version}"
    say(f"publishing open/{prefix}")
    if not store.is_complete(OPEN, prefix):
        manifest = store.publish(
            OPEN,
            prefix,
            dict(files),
            {
                "event": ev.name,
                "version": version,
                "synthesizer": settings.synthesizer,
                "seed": settings.seed,
                "rows": len(build.twin),
                "quality": outcome.quality,
            },
        )
        for name, entry in manifest["files"].items():
            audit.record("release", OPEN, f"{prefix}/{name}", entry["sha256"], entry["size"])
    outcome.version, outcome.released, outcome.prefix = version, True, f"{OPEN}/{prefix}"
    return outcome


def _prefect_synthesize_flow():
    """Build the Prefect flow lazily, so importing this module does not import Prefect."""
    from prefect import flow, get_run_logger
    from prefect.artifacts import create_markdown_artifact

    @flow(name="synthesize", log_prints=False)
    def synthesize_flow(event_path: str) -> dict:
        """Make the synthetic twin and release it if every gate passes."""
        logger = get_run_logger()
        event_dir = load_event(Path(event_path))
        store = ObjectStore.for_workdir(event_dir.workdir)

        def say(message: str) -> None:
            logger.info(message)
            if progress_hook:
                progress_hook(message)

        outcome = run_synthesize(event_dir, store, progress=say)
        rows = "\n".join(
            f"| {c['name']} | {c['value']:.4g} | {c['threshold']} | {c['passed']} |"
            for c in outcome.checks
            if not c["name"].startswith("fidelity ")
        )
        create_markdown_artifact(
            key=f"{outcome.event}-twin-gate",
            markdown=f"# Twin {outcome.version}\n\n| check | figure | required | passed |\n"
            f"|---|---|---|---|\n{rows}\n",
            description="Twin release gate (figures only)",
        )
        logger.info("released %s (%d rows)", outcome.prefix, outcome.rows)
        return outcome.summary()

    return synthesize_flow


def __getattr__(name: str) -> Any:
    if name == "synthesize_flow":
        flow = _prefect_synthesize_flow()
        globals()["synthesize_flow"] = flow
        return flow
    raise AttributeError(name)
