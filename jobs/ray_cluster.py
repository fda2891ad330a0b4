"""A real multi-node Ray cluster on this machine, on 127.0.0.1 only: for tests and `bench scale`.

Why a helper: "does the job give the same result on two nodes?" needs real `ray start` nodes,
and on one machine Ray needs three things said explicitly. (1) RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
keeps the head and every client on 127.0.0.1 (otherwise Ray swaps 127.0.0.1 for the machine's
outward address and listens on every interface). (2) The `ray start` CLI refuses to add a node
under that switch, so the second node is started through a two-line launcher that only keeps
127.0.0.1 as given. (3) Token authentication is on by default: a fresh token goes to every
process in RAY_AUTH_TOKEN, so nothing reads or writes ~/.ray/auth_token. Each cluster has its
own --temp-dir, and `stop()` kills exactly its own processes, by pid (never `ray stop`, which
would stop every Ray cluster on the machine).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER_LAUNCHER = (
    "import sys, ray._private.services as s; s.resolve_ip_for_localhost = lambda h: h; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
)
LOOPBACK_ENV = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`with LocalCluster(nodes=2) as c:` → c.address ("127.0.0.1:port"), c.dashboard, c.env."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, dashboard: bool = True, tag: str = "") -> None:
        self.nodes, self.cpus, self.with_dashboard = nodes, cpus_per_node, dashboard
        self.temp = Path(f"/tmp/ray_laitkit_{tag or 'c'}_{secrets.token_hex(3)}")
        self.port, self.dash, self.client = free_port(), free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dash}"
        token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env: dict[str, str] = {**os.environ, **LOOPBACK_ENV, **token, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    def start(self) -> LocalCluster:
        bindir = Path(sys.executable).parent
        common = ["--num-cpus", str(self.cpus), "--disable-usage-stats"]
        # the dashboard agent's HTTP port is fixed (52365) unless given: two clusters on one
        # machine would collide, and a head without its agent refuses `ray job submit`
        agent = lambda: ["--dashboard-agent-listen-port", str(free_port())]  # noqa: E731
        dash = (["--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dash)]
                if self.with_dashboard else ["--include-dashboard=false"])  # fmt: skip
        head = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port), "--temp-dir", str(self.temp),
                "--ray-client-server-port", str(self.client)]  # fmt: skip
        self._run([str(bindir / "ray"), "start", *head, *dash, *common, *agent()], self.env)
        for _ in range(self.nodes - 1):
            self._run([sys.executable, "-c", WORKER_LAUNCHER, "start", "--address", self.address,
                       "--node-ip-address", "127.0.0.1", *common, *agent()],
                      {**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"})  # fmt: skip
        return self

    def _run(self, cmd: list[str], env: dict[str, str]) -> None:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"{' '.join(cmd[:3])} failed: {proc.stderr[-2000:]}")

    def stop(self) -> None:
        """SIGKILL this cluster's processes: those whose command line names its GCS address or
        temp dir, and all their descendants (agents and workers rename themselves, "ray::…")."""
        marks = (self.address, str(self.temp))
        parents: dict[int, int] = {}
        roots: set[int] = set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parents[int(pid)] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if any(m in cmd for m in marks):
                roots.add(int(pid))
        doomed, grew = set(roots), True
        while grew:
            kids = {p for p, pp in parents.items() if pp in doomed and p not in doomed}
            doomed |= kids
            grew = bool(kids)
        for pid in sorted(doomed):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
