"""Browser tests of the labeling page: Debian's Chromium driven by Playwright, and the page's server in a subprocess.

Playwright's own browser download cannot work on machines without general internet access, so the system binary is
launched through ``executable_path``. :class:`LabelServer` runs ``python -m rlhf_ext.labeling serve`` as a real
process (so a test can ``kill -9`` it), optionally inside a network namespace (:class:`NetNamespace`) to serve on an
address that is not loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def find_chromium() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def launch_chromium(playwright, executable: str | None = None):
    """A headless Chromium from the system binary; Playwright gives each launch a fresh temporary profile."""
    return playwright.chromium.launch(
        executable_path=executable or find_chromium(), headless=True, args=CHROMIUM_FLAGS
    )


def only_local_traffic(context, allowed_hosts: tuple[str, ...]) -> list[str]:
    """Abort every request of ``context`` to a host outside ``allowed_hosts``; returns the list of blocked URLs."""
    blocked: list[str] = []

    def route(r):
        host = r.request.url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if r.request.url.startswith(("data:", "blob:")) or host in allowed_hosts:
            return r.continue_()
        blocked.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    return blocked


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelServer:
    """``python -m rlhf_ext.labeling serve <args>`` in a subprocess, its output in ``log``."""

    def __init__(
        self,
        args: list[str],
        log: str | os.PathLike,
        host: str = "127.0.0.1",
        port: int | None = None,
        prefix: list[str] | None = None,
        env: dict | None = None,
    ):
        self.host, self.port = host, port or free_port()
        self.args = [*args, "--server_name", host, "--server_port", str(self.port)]
        self.log = Path(log)
        self.prefix = prefix or []
        self.env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, timeout: float = 120.0, wait_for_http: bool = True) -> LabelServer:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "rlhf_ext.labeling", "serve", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the labeling server exited with {self.process.returncode}:\n{self.output()}")
            if self._ready(wait_for_http):
                return self
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"the labeling server did not come up in {timeout:.0f} s:\n{self.output()}")

    def _ready(self, http: bool) -> bool:
        if not http:
            return "Running on" in self.output()
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the server's whole process group, as a crash or the OOM killer would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()


class NetNamespace:
    """A network namespace of its own with one non-loopback address on a veth interface (root and iproute2 needed).

    Traffic to that address never leaves the namespace: a server bound there and a browser started inside it talk to
    each other as two hosts would, and nothing else on the machine or its network can reach either.
    """

    def __init__(self, name: str, address: str = "192.0.2.10"):
        self.name, self.address = name, address

    def __enter__(self) -> NetNamespace:
        self._run("ip", "netns", "add", self.name)
        try:
            for cmd in (
                ["link", "set", "lo", "up"],
                ["link", "add", "rlhf0", "type", "veth", "peer", "name", "rlhf1"],  # both ends stay inside
                ["addr", "add", f"{self.address}/24", "dev", "rlhf0"],
                ["link", "set", "rlhf0", "up"],
                ["link", "set", "rlhf1", "up"],
            ):
                self._run("ip", "-n", self.name, *cmd)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    @staticmethod
    def _run(*cmd: str) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def wrapper(self, executable: str, folder: str | os.PathLike) -> str:
        """A script that runs ``executable`` inside the namespace (for Playwright's ``executable_path``)."""
        path = Path(folder) / f"in-{self.name}-{Path(executable).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {executable} "$@"\n')
        path.chmod(0o755)
        return str(path)
