"""Keep team kernels off the event's own services on loopback (local backend, root).

The object store (moto accepts any key), the Prefect API, the proxy's API and the judge page
all listen on 127.0.0.1, where a team's kernel runs too. Every team user is in the Unix group
`hackgap-teams`; one iptables rule per hub rejects new connections from that group to those
ports. The hub's own API stays reachable (a team server reports to it with its own token).
The rule carries a comment naming the hub, so `down` removes exactly it.
"""

from __future__ import annotations

import shutil
import subprocess

GROUP = "hackgap-teams"


def ensure_group() -> None:
    subprocess.run(["groupadd", "--force", "--system", GROUP], check=True, capture_output=True)


def _rule(tag: str, ports: list[int]) -> list[str]:
    return ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "owner", "--gid-owner", GROUP,
            "--suppl-groups", "-m", "multiport", "--dports", ",".join(map(str, sorted(ports))),
            "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", tag,
            "-j", "REJECT", "--reject-with", "tcp-reset"]  # fmt: skip


def available() -> bool:
    return shutil.which("iptables") is not None


def block(tag: str, ports: list[int]) -> None:
    """Reject team users' new connections to `ports` (replaces an earlier rule of `tag`)."""
    unblock(tag)
    ensure_group()
    subprocess.run(["iptables", "-I", *_rule(tag, ports)], check=True, capture_output=True)


def unblock(tag: str) -> int:
    """Remove the rules carrying `tag`; return how many."""
    if not available():
        return 0
    listed = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True)
    removed = 0
    for line in listed.stdout.splitlines():
        if f"--comment {tag} " in line + " " or f'--comment "{tag}"' in line:
            args = line.split()[1:]  # drop "-A"
            subprocess.run(["iptables", "-D", *args], capture_output=True)
            removed += 1
    return removed
