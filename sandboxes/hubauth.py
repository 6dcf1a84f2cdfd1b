"""Personal log-in for the hub: a small Authenticator checking salted hashes from a file.

Why our own (measured on JupyterHub 6.1.1): nativeauthenticator 1.3.0 cannot log anyone in
(500, `'LoginHandler' object has no attribute 'statsd'`); firstuseauthenticator 1.1.1 lets
anyone claim an account that has no password yet; the built-in shared-password
authenticator gives no personal credentials. hackgap generates every password itself, so
all the hub needs is to check a PBKDF2-SHA256 hash (hashlib, no extra package) from a file
hackgap writes: one JSON object {username: "pbkdf2_sha256$iterations$salt$hash"}. The file
is read on each log-in, so provisioning new people needs no hub restart; who is in it is
who may log in (team collaboration accounts never are: nobody logs in as them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 200_000

try:  # the hub imports this module; hackgap's CLI only needs the hashing functions
    from jupyterhub.auth import Authenticator
    from traitlets import Unicode
except ImportError:  # pragma: no cover - jupyterhub is a hackgap dependency
    Authenticator = object  # type: ignore[assignment,misc]


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash in the form the authenticator checks."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"{ALGORITHM}${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        if algorithm != ALGORITHM:
            return False
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def read_hashes(path: Path) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def new_password() -> str:
    """A password people can type: 4 groups of 4 letters/digits without look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


class HackgapAuthenticator(Authenticator):  # type: ignore[misc,valid-type]
    """Log in with the personal password hackgap generated (hash file: `password_file`)."""

    password_file = Unicode(
        "", config=True, help="JSON file {username: pbkdf2 hash} that hackgap writes."
    )

    def check_allowed(self, username, authentication=None):  # type: ignore[override]
        return username in read_hashes(Path(self.password_file))

    async def authenticate(self, handler, data):  # type: ignore[override]
        username = (data or {}).get("username", "")
        stored = read_hashes(Path(self.password_file)).get(username)
        if stored and check_password((data or {}).get("password", ""), stored):
            return username
        self.log.warning("Failed log-in for %r", username)
        return None
