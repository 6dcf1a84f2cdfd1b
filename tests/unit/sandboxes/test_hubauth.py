"""The hub's password check: salted PBKDF2 hashes from the file hackgap writes."""

from __future__ import annotations

import asyncio
import json

from sandboxes.hubauth import HackgapAuthenticator, check_password, hash_password, new_password


def test_hash_checks_only_the_right_password():
    stored = hash_password("correct horse", iterations=1000)
    assert check_password("correct horse", stored)
    assert not check_password("correct hors", stored)
    assert not check_password("correct horse", "md5$1$x$y")
    assert not check_password("anything", "garbage")


def test_same_password_gets_different_salts():
    assert hash_password("pw", iterations=1000) != hash_password("pw", iterations=1000)


def test_generated_passwords_are_long_and_distinct():
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 19 for p in passwords)


def test_authenticator_reads_the_file_on_each_login(tmp_path):
    file = tmp_path / "passwords.json"
    auth = HackgapAuthenticator(password_file=str(file))
    login = lambda u, p: asyncio.run(auth.authenticate(None, {"username": u, "password": p}))  # noqa: E731
    assert login("anna", "pw-1") is None  # no file yet: nobody
    file.write_text(json.dumps({"anna": hash_password("pw-1", iterations=1000)}))
    assert login("anna", "pw-1") == "anna"
    assert login("anna", "pw-2") is None
    assert login("bram", "pw-1") is None
    assert auth.check_allowed("anna") and not auth.check_allowed("bram")
