"""A small client for the JupyterHub REST API, with the hackgap service's token.

Provisioning goes through the API only (never the hub database). Plain urllib: the calls
are few and simple, and the hub is on loopback.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class HubError(Exception):
    """The hub refused or could not answer a request hackgap needs."""

    hackgap_user_error = True


class HubAPI:
    def __init__(self, api_url: str, token: str, timeout: float = 30):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the token
        return f"HubAPI({self.api_url!r})"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method)
        req.add_header("Authorization", f"token {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, None
        except (urllib.error.URLError, OSError) as exc:
            raise HubError(
                f"The hub at {self.api_url} does not answer ({getattr(exc, 'reason', exc)}); "
                "start it with `hackgap services up DIR`."
            ) from None

    def _ok(self, method: str, path: str, body: Any = None, ok=(200, 201, 204)) -> Any:
        status, doc = self.request(method, path, body)
        if status not in ok:
            message = doc.get("message") if isinstance(doc, dict) else ""
            raise HubError(f"The hub refused {method} {path} ({status}: {message}).")
        return doc

    # -- reads ------------------------------------------------------------------------

    def version(self) -> str:
        return self._ok("GET", "/")["version"]

    def users(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        offset = 0
        while True:
            page = self._ok("GET", f"/users?offset={offset}&limit=1000&include_stopped_servers")
            out.update((u["name"], u) for u in page)
            if len(page) < 1000:
                return out
            offset += len(page)

    def groups(self) -> dict[str, list[str]]:
        return {g["name"]: sorted(g["users"]) for g in self._ok("GET", "/groups?limit=1000")}

    def user(self, name: str) -> dict | None:
        status, doc = self.request("GET", f"/users/{_q(name)}")
        return doc if status == 200 else None

    # -- writes -----------------------------------------------------------------------

    def create_users(self, names: list[str]) -> None:
        if names:
            self._ok("POST", "/users", {"usernames": sorted(names)}, ok=(201,))

    def delete_user(self, name: str) -> None:
        self._ok("DELETE", f"/users/{_q(name)}", ok=(204, 404))

    def create_group(self, name: str) -> None:
        self._ok("POST", f"/groups/{_q(name)}", ok=(201, 409))

    def delete_group(self, name: str) -> None:
        self._ok("DELETE", f"/groups/{_q(name)}", ok=(204, 404))

    def add_to_group(self, group: str, names: list[str]) -> None:
        if names:
            self._ok("POST", f"/groups/{_q(group)}/users", {"users": sorted(names)})

    def remove_from_group(self, group: str, names: list[str]) -> None:
        if names:
            self._ok("DELETE", f"/groups/{_q(group)}/users", {"users": sorted(names)})

    def start_server(self, name: str) -> int:
        """201 ready, 202 pending, 400 already running."""
        status, doc = self.request("POST", f"/users/{_q(name)}/server")
        if status not in (201, 202, 400):
            message = doc.get("message") if isinstance(doc, dict) else ""
            raise HubError(f"The hub could not start the server of {name} ({status}: {message}).")
        return status

    def stop_server(self, name: str) -> None:
        self._ok("DELETE", f"/users/{_q(name)}/server", ok=(202, 204, 400, 404))

    def wait_ready(self, names: list[str], timeout: float) -> dict[str, str]:
        """Poll until every named server is ready (or stopped/failed); name -> state."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        pending = list(names)
        while pending:
            users = self.users()
            for name in list(pending):
                server = (users.get(name) or {}).get("servers", {}).get("")
                state = server_state(server)
                states[name] = state
                if state != "pending":
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                break
            if pending:
                time.sleep(0.3)
        return states

    def start_and_wait(self, names: list[str], timeout: float) -> dict[str, str]:
        """Start servers concurrently (the hub overlaps spawns), wait until each answers."""
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(names)))) as pool:
            list(pool.map(self.start_server, names))
        return self.wait_ready(names, timeout)


def server_state(server: dict | None) -> str:
    """ready | pending | stopped, from a user model's server entry."""
    if not server:
        return "stopped"
    if server.get("ready"):
        return "ready"
    return "pending" if server.get("pending") else "stopped"


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")
