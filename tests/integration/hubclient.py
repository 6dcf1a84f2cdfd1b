"""Test helpers that act like a person or a notebook against a real hub (no browser).

`login` logs a person in with the hub's form; `user_token` asks the hub for a token that
carries a user's own permissions; `run_in_kernel` executes code in a team server's kernel
over the Jupyter websocket protocol, so a test sees what a team's notebook sees.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import requests
from tornado.websocket import websocket_connect


def login(base_url: str, username: str, password: str) -> requests.Session:
    """A cookie session after the hub's log-in form (raises if the hub refused)."""
    session = requests.Session()
    session.get(f"{base_url}hub/login", timeout=30)
    xsrf = session.cookies.get("_xsrf", "")
    response = session.post(
        f"{base_url}hub/login?next=",
        data={"username": username, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302:
        raise PermissionError(f"log-in of {username} refused ({response.status_code})")
    return session


def user_token(base_url: str, username: str, password: str) -> str:
    """A token with the person's own permissions, made by the person after logging in."""
    session = login(base_url, username, password)
    response = session.post(
        f"{base_url}hub/api/users/{username}/tokens",
        json={"note": "test", "expires_in": 900},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
        timeout=30,
    )
    assert response.status_code in (200, 201), (response.status_code, response.text[:200])
    return response.json()["token"]


def server_get(base_url: str, account: str, path: str, token: str) -> requests.Response:
    return requests.get(
        f"{base_url}user/{account}/{path}",
        headers={"Authorization": f"token {token}"},
        allow_redirects=False,
        timeout=30,
    )


async def _execute(base_url: str, account: str, token: str, code: str, timeout: float) -> str:
    headers = {"Authorization": f"token {token}"}
    response = requests.post(
        f"{base_url}user/{account}/api/kernels", headers=headers, json={}, timeout=60
    )
    response.raise_for_status()
    kernel = response.json()["id"]
    ws_url = f"{base_url.replace('http', 'ws', 1)}user/{account}/api/kernels/{kernel}/channels"
    from tornado.httpclient import HTTPRequest

    conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    msg_id = uuid.uuid4().hex
    await conn.write_message(
        json.dumps(
            {
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                           "session": uuid.uuid4().hex, "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False},
            }
        )
    )  # fmt: skip
    out = []
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), timeout)
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        conn.close()
        requests.delete(
            f"{base_url}user/{account}/api/kernels/{kernel}", headers=headers, timeout=30
        )
    return "".join(out)


def run_in_kernel(base_url: str, account: str, token: str, code: str, timeout: float = 90) -> str:
    """Run code in a new kernel on the team's server; return what it printed."""
    return asyncio.run(_execute(base_url, account, token, code, timeout))
