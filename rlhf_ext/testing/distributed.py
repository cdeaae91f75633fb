"""Run a Python script under 2 CPU processes (gloo) through ``accelerate launch``, for tests and benchmarks.

``run_distributed(script, *args)`` launches ``script`` with
``accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml --main_process_port <free port>``, so
every distributed test also checks the config file users are told to launch with. Each process gets
``OMP_NUM_THREADS=1`` (two processes on a shared 2-core machine), the launcher runs in its own process group,
and that group and every process below the launcher are killed when ``timeout`` runs out (a hung collective fails
the test instead of hanging it). Each rank's output goes through the launcher's log tee (``--tee 3``), so it
arrives in whole lines tagged ``[default<rank>]:`` (two ranks failing together no longer interleave their
tracebacks character by character). A failure raises ``AssertionError`` with the command, the first distinct error
lines of all ranks and the tail of stderr (and of stdout).

Scripts must tear the process group down before they exit: left to the interpreter's shutdown, gloo's threads can
abort a rank ("terminate called without an active exception") after all the work is done, which failed CI once.
End a script with :func:`teardown` (or ``torch.distributed.destroy_process_group()`` after a barrier);
``run_distributed`` refuses a script that does neither.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CPU_2PROC_CONFIG = REPO_ROOT / "recipes" / "accelerate_configs" / "cpu_2proc.yaml"
_TEARDOWN_MARKERS = ("teardown(", "destroy_process_group(")
_PORT_IN_USE = ("address already in use", "eaddrinuse")
_ERROR_LINE = re.compile(r"\w*(Error|Exception)\b:|terminate called|what\(\):|Signal \d+ \(SIG")
_RANK_TAG = re.compile(r"^\[\w+?\d+\]:")  # the tee's "[default1]:" prefix


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL the launcher's process group and every descendant: torch's elastic agent starts the workers in
    sessions of their own, so killing the group alone left hung workers alive, holding the output pipes open."""
    descendants = _descendants(pid)
    for target in (pid, *descendants):
        try:
            os.killpg(target, signal.SIGKILL) if target == pid else os.kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it); the launcher binds it shortly after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def teardown() -> None:
    """Barrier, destroy the default process group, then end the process with exit code 0.

    Call it last in every script run by ``run_distributed``, after its results are written. The process ends with
    ``os._exit`` because interpreter shutdown (C++ static destructors of torch's and gloo's threads) can still abort a
    rank with "terminate called without an active exception" after all its work is done, which would fail the launch.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _tail(text: str, chars: int) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]


def _error_lines(text: str, limit: int = 12) -> str:
    """The first distinct error lines of all ranks: the root cause is often far above the tail (a rank that aborts
    first makes its peer fail later with a mere "connection reset")."""
    found, seen = [], set()
    for line in text.splitlines():
        untagged = _RANK_TAG.sub("", line.strip()).strip()
        if _ERROR_LINE.search(untagged) and untagged not in seen:
            seen.add(untagged)
            found.append(line.strip()[:300])
            if len(found) == limit:
                break
    return "\n".join(found)


def run_distributed(
    script: str | os.PathLike,
    *args: str | os.PathLike,
    config_file: str | os.PathLike = CPU_2PROC_CONFIG,
    launch_args: tuple[str, ...] | list[str] = (),
    timeout: float = 600,
    env: dict[str, str] | None = None,
    tail_chars: int = 4000,
) -> subprocess.CompletedProcess:
    """Run ``script`` with ``args`` under ``accelerate launch --config_file config_file`` (2 CPU processes).

    ``launch_args`` go to ``accelerate launch`` before the script and override the config file, e.g.
    ``("--num_processes", "2", "--mixed_precision", "no")`` to run a GPU config such as deepspeed_zero2.yaml on CPU.

    Returns the completed process (``stdout``/``stderr`` as text) when it exits with 0. Raises ``AssertionError``
    naming the command, the return code and the tail of stderr otherwise, or when ``timeout`` seconds pass (the
    launcher and its workers are killed). A port clash at start-up is retried once on another free port.
    """
    script = Path(script)
    source = script.read_text()
    if not any(marker in source for marker in _TEARDOWN_MARKERS):
        raise ValueError(
            f"{script} never tears the process group down: end it with rlhf_ext.testing.distributed.teardown() "
            "(or torch.distributed.destroy_process_group()), or rank 1 may abort at interpreter shutdown."
        )
    config_file = Path(config_file)
    if not config_file.exists():
        raise FileNotFoundError(f"accelerate config {config_file} not found (run from a checkout of the repository).")
    full_env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false")
    full_env.update(env or {})
    # The script must import the same rlhf_ext as the caller, whatever the current directory.
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH")) if p)

    # The launcher tees each rank's streams through files in log_dir; they go when the run is over.
    with tempfile.TemporaryDirectory(prefix="run_distributed_logs_") as log_dir:
        for attempt in range(2):
            command = [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(config_file),
                "--main_process_port",
                str(free_port()),
                "--tee",
                "3",  # both streams of every rank, line by line with the rank's tag
                "--log_dir",
                log_dir,
                *launch_args,
                str(script),
                *map(str, args),
            ]
            proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=full_env,
                start_new_session=True,  # its own process group: a timeout kills the launcher and both workers
            )
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                stdout, stderr = proc.communicate()
                raise AssertionError(
                    f"timed out after {timeout:.0f} s: {' '.join(command)}\n--- stderr (tail) ---\n"
                    f"{_tail(stderr, tail_chars)}"
                ) from None
            result = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
            if proc.returncode == 0:
                return result
            if attempt == 0 and any(s in stderr.lower() for s in _PORT_IN_USE):
                continue  # another job took the port between free_port() and the launcher's bind
            break
        raise AssertionError(
            f"exit code {result.returncode}: {' '.join(command)}\n--- error lines (first) ---\n"
            f"{_error_lines(result.stderr)}\n--- stderr (tail) ---\n{_tail(result.stderr, tail_chars)}"
            f"\n--- stdout (tail) ---\n{_tail(result.stdout, tail_chars // 4)}"
        )
