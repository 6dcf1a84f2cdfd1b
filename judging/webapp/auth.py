"""Who is asking: JupyterHub OAuth for the judge page (jupyterhub.services.auth.HubOAuth).

Browsers log in through the hub's OAuth flow (authorisation code with PKCE): the page
sends them to the hub's authorize URL, the hub sends them back to `<prefix>oauth_callback`
with a code, and the page swaps it for a hub token (HubOAuth.token_for_code), kept in a
signed, HttpOnly cookie scoped to the service's path. Scripts and tests may send a hub
token in an `Authorization: token ...` header instead. Every request asks the hub who the
token belongs to (HubOAuth.user_for_token, cached briefly) and checks the service's access
scope; the page then decides by hub group: "judges" score, "organisers" oversee.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from sandboxes import layout

log = logging.getLogger("judging.webapp")

SESSION_COOKIE = "hackgap-judge"
STATE_COOKIE = "hackgap-judge-oauth-state"
STATE_MAX_AGE = 600


class NotLoggedIn(Exception):
    """A browser without a valid session: send it through the hub's OAuth flow."""


@dataclass(frozen=True)
class Identity:
    name: str
    groups: frozenset[str]
    by_cookie: bool = False
    csrf: str = ""

    @property
    def is_judge(self) -> bool:
        return layout.JUDGES_GROUP in self.groups

    @property
    def is_organiser(self) -> bool:
        return layout.ORGANISERS_GROUP in self.groups


class HubIdentity:
    """The hub side of logging in; one per app."""

    def __init__(self, hub_auth=None, *, secure_cookies: bool = False):
        self._hub_auth = hub_auth
        self.secure_cookies = secure_cookies
        # From the environment the hub gives its managed services (HubOAuth reads the same),
        # so the app answers before jupyterhub (seconds to import) is loaded: the hub waits
        # only so long for a service to answer at start.
        token = hub_auth.api_token if hub_auth else os.environ["JUPYTERHUB_API_TOKEN"]
        self._key = hashlib.sha256(b"hackgap-judge\0" + token.encode()).digest()
        self.prefix = (
            hub_auth.base_url if hub_auth else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        )

    @property
    def hub_auth(self):
        """jupyterhub.services.auth.HubOAuth, made on first use."""
        if self._hub_auth is None:
            from jupyterhub.services.auth import HubOAuth

            self._hub_auth = HubOAuth(cache_max_age=30)
        return self._hub_auth

    # -- signed values -------------------------------------------------------------------

    def _sign(self, payload: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def _unsign(self, value: str | None, max_age: int | None = None) -> dict | None:
        if not value or "." not in value:
            return None
        body, mac = value.rsplit(".", 1)
        good = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, good):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if max_age is not None and time.time() - payload.get("t", 0) > max_age:
            return None
        return payload

    def _https(self, request: Request) -> bool:
        """Behind an https proxy (production) the cookies are Secure."""
        forwarded = request.headers.get("x-forwarded-proto", "")
        return self.secure_cookies or request.url.scheme == "https" or forwarded == "https"

    def csrf_for(self, token: str) -> str:
        return hmac.new(self._key, b"csrf\0" + token.encode(), hashlib.sha256).hexdigest()

    # -- identify a request ---------------------------------------------------------------

    def _token(self, request: Request) -> tuple[str | None, bool]:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and value.strip():
            return value.strip(), False
        session = self._unsign(request.cookies.get(SESSION_COOKIE))
        return (session or {}).get("token"), True

    async def identify(self, request: Request) -> Identity:
        """The hub user behind this request; NotLoggedIn, or HTTPException 403 if not allowed."""
        token, by_cookie = self._token(request)
        if not token:
            raise NotLoggedIn()
        try:
            model = await self.hub_auth.user_for_token(token, sync=False)
        except Exception as exc:  # tornado HTTPError: the hub is down or refused us
            log.warning("hub could not identify a request: %s", type(exc).__name__)
            raise HTTPException(502, "The hub could not be asked who you are; try again.") from None
        if model is None:
            raise NotLoggedIn()
        if model.get("kind", "user") != "user" or not self.hub_auth.check_scopes(
            self.hub_auth.access_scopes, model
        ):
            raise HTTPException(403, "You have no access to the judge page.")
        identity = Identity(
            name=model["name"],
            groups=frozenset(model.get("groups") or ()),
            by_cookie=by_cookie,
            csrf=self.csrf_for(token),
        )
        if not (identity.is_judge or identity.is_organiser):
            raise HTTPException(403, "The judge page is for judges and organisers only.")
        return identity

    # -- the OAuth dance ------------------------------------------------------------------

    def login_redirect(self, request: Request) -> Response:
        """Send a browser to the hub's authorize URL, remembering where it was going."""
        verifier, challenge, method = self.hub_auth.generate_pkce_code_challenge()
        state = secrets.token_urlsafe(16)
        next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not next_url.startswith(self.prefix):
            next_url = self.prefix
        url = (
            self.hub_auth.login_url
            + "&"
            + urlencode(
                {"state": state, "code_challenge": challenge, "code_challenge_method": method}
            )
        )
        response = RedirectResponse(url, status_code=302)
        cookie = self._sign({"s": state, "v": verifier, "n": next_url, "t": time.time()})
        response.set_cookie(
            STATE_COOKIE, cookie, max_age=STATE_MAX_AGE, path=self.prefix, httponly=True,
            samesite="lax", secure=self._https(request),
        )  # fmt: skip
        return response

    async def callback(self, request: Request) -> Response:
        """Finish the login: check the state, swap the code for a token, set the session."""
        saved = self._unsign(request.cookies.get(STATE_COOKIE), max_age=STATE_MAX_AGE)
        state, code = request.query_params.get("state"), request.query_params.get("code")
        if not saved or not state or not code or not hmac.compare_digest(saved["s"], state):
            raise HTTPException(400, "This login link is stale; open the judge page again.")
        try:
            token = await self.hub_auth.token_for_code(code, code_verifier=saved["v"], sync=False)
        except Exception as exc:
            log.warning("hub refused an OAuth code: %s", type(exc).__name__)
            raise HTTPException(403, "The hub did not accept this login; try again.") from None
        response = RedirectResponse(saved["n"], status_code=302)
        response.delete_cookie(STATE_COOKIE, path=self.prefix)
        response.set_cookie(
            SESSION_COOKIE, self._sign({"token": token}), path=self.prefix, httponly=True,
            samesite="lax", secure=self._https(request),
        )  # fmt: skip
        return response

    def logout(self) -> Response:
        response = RedirectResponse(self.hub_auth.hub_prefix + "logout", status_code=302)
        response.delete_cookie(SESSION_COOKIE, path=self.prefix)
        return response
