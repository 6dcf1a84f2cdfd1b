"""The judge page: a FastAPI app the hub runs as its service "judge".

Judges (hub group "judges") see only the submissions assigned to them, by blind code until
the organiser reveals names, with the brief, the rubric form (saved as they go, editable
until submitted), the executed notebook and the outputs. Organisers (group "organisers")
see progress, the leaderboard, agreement and disagreements, flip the reveal switch and
download the CSV. The API never takes a judge's name from the request: a judge reads and
writes only their own sheet.

Pages run only this app's own script (script-src 'self'); a notebook's HTML is served from
its own URL with a policy that runs no script at all (and a sandbox), shown in a sandboxed
frame.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from markdown_it import MarkdownIt

from judging.scores import ScoreError, ScoreStore, Submission
from judging.webapp import view as views
from judging.webapp.auth import HubIdentity, Identity, NotLoggedIn
from judging.webapp.config import JudgingConfig, read_config
from sandboxes import layout

HERE = Path(__file__).parent
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# A notebook may contain anything its author printed: no script, no requests, no forms.
NOTEBOOK_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
DEFAULT_MARGIN = 1.5

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def _secure_headers(response: Response, csp: str = PAGE_CSP) -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


class PackUnavailable(Exception):
    """A submission's challenge pack does not load (the organiser's fix; the log says why)."""


@functools.lru_cache(maxsize=32)
def _pack(challenge: str, search_path: tuple[str, ...]):
    # Imported on first use: jsonschema (behind the pack loader) takes seconds to import,
    # and the hub gives a managed service only so long to start answering.
    from challenges import ChallengeError, load_pack

    try:
        return load_pack(challenge, [Path(p) for p in search_path])
    except ChallengeError as exc:
        raise PackUnavailable(str(exc)) from None


async def current_identity(request: Request) -> Identity:
    """Who is asking (a FastAPI dependency): the hub's answer, or NotLoggedIn / 403."""
    return await request.app.state.judge.identity.identify(request)


Me = Annotated[Identity, Depends(current_identity)]


class JudgeApp:
    """The state behind the routes: where the workdir is, the store, who is asking."""

    def __init__(self, workdir: Path, identity: Any):
        self.workdir = Path(workdir)
        self.store = ScoreStore(layout.judging_db(self.workdir))
        self.identity = identity
        self.prefix = identity.prefix

    def config(self) -> JudgingConfig | None:
        return read_config(self.workdir)

    def pack(self, challenge: str):
        config = self.config()
        paths = tuple(str(p) for p in config.challenge_search_path) if config else ()
        return _pack(challenge, paths)

    def rubrics(self, submissions: list[Submission]) -> dict:
        return {s.challenge: self.pack(s.challenge).rubric for s in submissions}

    def label(self, submission: Submission, revealed: bool) -> str:
        return f"{submission.code} ({submission.team})" if revealed else submission.code

    def page(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        config = self.config()
        html = _templates.get_template(name).render(
            prefix=self.prefix, title=config.title if config else "Hack the gap", **values
        )
        return _secure_headers(HTMLResponse(html, status_code=status))

    # -- judge's view of one submission ---------------------------------------------------

    def assigned(self, me: Identity, code: str) -> Submission:
        if not me.is_judge:
            raise HTTPException(403, "Only judges score submissions.")
        submission = self.store.by_code(code)
        if submission is None:
            raise HTTPException(404, f"There is no submission {code}.")
        if not self.store.is_assigned(me.name, submission.team):
            raise HTTPException(403, f"Submission {code} is not assigned to you.")
        return submission

    def sheet_json(self, me: Identity, submission: Submission) -> dict:
        sheet = self.store.sheet(me.name, submission.team)
        return {
            "code": submission.code,
            "scores": sheet.scores,
            "comment": sheet.comment,
            "updated_at": sheet.updated_at,
            "submitted_at": sheet.submitted_at,
        }

    def brief_html(self, pack) -> str:
        from challenges.render import RenderContext, render_brief

        config = self.config()
        context = RenderContext(
            event_title=config.title if config else "Hack the gap",
            start=config.date("start") if config else None,
            deadline=config.date("deadline") if config else None,
            end=config.date("end") if config else None,
        )
        return _markdown.render(render_brief(pack, context))

    def leaderboard(self):
        from judging import leaderboard

        config = self.config()
        submissions = self.store.submissions()
        return leaderboard.build(
            submissions,
            self.store.all_sheets(),
            self.rubrics(submissions),
            revealed=self.store.revealed(),
            margin=config.margin if config else DEFAULT_MARGIN,
        )


def create_app(workdir: Path, identity: Any | None = None) -> FastAPI:
    """The app; `identity` answers `identify(request)` (default: the hub, HubIdentity)."""
    identity = identity or HubIdentity()
    state = JudgeApp(workdir, identity)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.judge = state
    prefix = state.prefix.rstrip("/")
    router = APIRouter(prefix=prefix)

    def check_write(request: Request, who: Identity) -> None:
        """Cookie-authenticated writes carry the page's CSRF token (and JSON)."""
        if who.by_cookie and request.headers.get("x-csrf-token") != who.csrf:
            raise HTTPException(403, "Missing or stale page token; reload the page.")

    @app.exception_handler(NotLoggedIn)
    async def _not_logged_in(request: Request, _exc: NotLoggedIn) -> Response:
        if "/api/" in request.url.path or request.method != "GET":
            return JSONResponse({"detail": "Log in through the hub first."}, status_code=401)
        return identity.login_redirect(request)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if "/api/" in request.url.path or request.method != "GET":
            return _secure_headers(
                JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
            )
        return state.page("error.html", status=exc.status_code, message=str(exc.detail))

    @app.exception_handler(views.ViewError)
    async def _bad_view(request: Request, exc: views.ViewError) -> Response:
        # The message names a path under the workdir: organisers see it in the log only.
        logging.getLogger("judging.webapp").warning("%s", exc)
        message = "This submission's files cannot be read; ask an organiser to review it again."
        return await _http_error(request, HTTPException(503, message))

    @app.exception_handler(PackUnavailable)
    async def _no_pack(request: Request, exc: PackUnavailable) -> Response:
        logging.getLogger("judging.webapp").warning("%s", exc)
        message = "The judge page cannot show this right now; an organiser is told why (log)."
        return await _http_error(request, HTTPException(503, message))

    @router.get("/oauth_callback")
    async def oauth_callback(request: Request) -> Response:
        return await identity.callback(request)

    @router.get("/logout")
    async def logout() -> Response:
        return identity.logout()

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        path = HERE / "static" / name
        if "/" in name or not path.is_file():
            raise HTTPException(404, "No such file.")
        return _secure_headers(FileResponse(path, media_type=mimetypes.guess_type(name)[0]))

    @router.get("/")
    async def home(who: Me) -> Response:
        if who.is_organiser and not who.is_judge:
            return RedirectResponse(f"{prefix}/organiser", status_code=302)
        revealed = state.store.revealed()
        items = []
        for s in state.store.assigned_to(who.name):
            sheet = state.store.sheet(who.name, s.team)
            status = "submitted" if sheet.submitted else "draft" if sheet.updated_at else "to do"
            title = state.pack(s.challenge).title["en"]
            label = state.label(s, revealed)
            items.append({"code": s.code, "label": label, "challenge": title, "status": status})
        return state.page("home.html", me=who, items=items)

    @router.get("/s/{code}")
    async def submission_page(code: str, who: Me) -> Response:
        submission = state.assigned(who, code)
        pack = state.pack(submission.challenge)
        view = views.load_view(state.workdir, submission.team)
        outputs = []
        for i, out in enumerate(view.outputs if view else ()):
            sides = {}
            for side in ("twin", "real"):
                path = view.file(getattr(out, side))
                sides[side] = {**views.preview(path), "url": f"{i}/{side}"} if path else None
            outputs.append({"name": out.name, "real_status": out.real_status, **sides})
        return state.page(
            "submission.html",
            me=who,
            label=state.label(submission, state.store.revealed()),
            code=submission.code,
            pack=pack,
            brief=state.brief_html(pack),
            view=view,
            outputs=outputs,
            sheet=state.sheet_json(who, submission),
            csrf=who.csrf,
        )

    @router.get("/s/{code}/notebook")
    async def notebook(code: str, who: Me) -> Response:
        submission = state.assigned(who, code)
        view = views.load_view(state.workdir, submission.team)
        html = views.notebook_html(view) if view else None
        if html is None:
            raise HTTPException(404, "The executed notebook is not available yet.")
        return _secure_headers(HTMLResponse(html), NOTEBOOK_CSP)

    @router.get("/s/{code}/out/{index}/{side}")
    async def output_file(code: str, index: int, side: str, who: Me) -> Response:
        submission = state.assigned(who, code)
        view = views.load_view(state.workdir, submission.team)
        if view is None or side not in ("twin", "real") or not 0 <= index < len(view.outputs):
            raise HTTPException(404, "No such output.")
        path = view.file(getattr(view.outputs[index], side))
        if path is None:
            raise HTTPException(404, "No such output.")
        media = views.IMAGE_TYPES.get(path.suffix.lower(), "text/plain; charset=utf-8")
        return _secure_headers(FileResponse(path, media_type=media), FILE_CSP)

    # -- the judge's own sheets -------------------------------------------------------------

    @router.get("/api/sheets")
    async def my_sheets(who: Me) -> Response:
        if not who.is_judge:
            raise HTTPException(403, "Only judges have score sheets.")
        subs = state.store.assigned_to(who.name)
        return _secure_headers(JSONResponse([state.sheet_json(who, s) for s in subs]))

    @router.get("/api/sheets/{code}")
    async def get_sheet(code: str, who: Me) -> Response:
        submission = state.assigned(who, code)
        return _secure_headers(JSONResponse(state.sheet_json(who, submission)))

    @router.put("/api/sheets/{code}")
    async def save_sheet(
        code: str, request: Request, who: Me, body: Annotated[dict, Body()]
    ) -> Response:
        check_write(request, who)
        submission = state.assigned(who, code)
        rubric = state.pack(submission.challenge).rubric
        values = body.get("scores") or {}
        comment = body.get("comment")
        if not isinstance(values, dict) or not (comment is None or isinstance(comment, str)):
            raise HTTPException(422, 'Send {"scores": {criterion: score}, "comment": text}.')
        try:
            state.store.save(
                who.name, submission.team, values, comment,
                criteria=[c.id for c in rubric.criteria],
                scale=(rubric.scale_min, rubric.scale_max),
            )  # fmt: skip
        except ScoreError as exc:
            locked = "submitted" in str(exc) or "closed" in str(exc)
            raise HTTPException(409 if locked else 422, str(exc)) from None
        return _secure_headers(JSONResponse(state.sheet_json(who, submission)))

    @router.post("/api/sheets/{code}/submit")
    async def submit_sheet(code: str, request: Request, who: Me) -> Response:
        check_write(request, who)
        submission = state.assigned(who, code)
        rubric = state.pack(submission.challenge).rubric
        try:
            state.store.submit(who.name, submission.team, criteria=[c.id for c in rubric.criteria])
        except ScoreError as exc:
            raise HTTPException(409, str(exc)) from None
        return _secure_headers(JSONResponse(state.sheet_json(who, submission)))

    # -- organiser -------------------------------------------------------------------------

    def organiser(who: Identity) -> None:
        if not who.is_organiser:
            raise HTTPException(403, "Only organisers see the leaderboard.")

    @router.get("/organiser")
    async def organiser_page(who: Me) -> Response:
        organiser(who)
        config = state.config()
        board = state.leaderboard()
        progress = state.store.progress(config.judges if config else ())
        closed = state.store.closed()
        return state.page(
            "organiser.html", me=who, board=board, progress=progress, csrf=who.csrf, closed=closed
        )

    @router.get("/api/leaderboard")
    async def leaderboard_json(who: Me) -> Response:
        organiser(who)
        return _secure_headers(JSONResponse(state.leaderboard().to_dict()))

    @router.get("/api/progress")
    async def progress_json(who: Me) -> Response:
        organiser(who)
        config = state.config()
        rows = state.store.progress(config.judges if config else ())
        return _secure_headers(JSONResponse([p.__dict__ for p in rows]))

    @router.get("/organiser/leaderboard.csv")
    async def leaderboard_csv(who: Me) -> Response:
        organiser(who)
        response = PlainTextResponse(state.leaderboard().to_csv(), media_type="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="leaderboard.csv"'
        return _secure_headers(response)

    @router.post("/api/reveal")
    async def reveal(request: Request, who: Me, body: Annotated[dict, Body()]) -> Response:
        check_write(request, who)
        organiser(who)
        if not isinstance(body.get("revealed"), bool):
            raise HTTPException(422, 'Send {"revealed": true} or {"revealed": false}.')
        state.store.set_revealed(body["revealed"])
        return _secure_headers(JSONResponse({"revealed": state.store.revealed()}))

    app.include_router(router)
    return app
