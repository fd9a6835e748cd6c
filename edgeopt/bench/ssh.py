"""A real board over SSH: copy the runner and the model, run, read one JSON document back.

Contract: :func:`run_ssh` uses the system OpenSSH client, so the user's ``~/.ssh/config``, agent, keys
and jump hosts apply; the spec's ``ssh_config`` (``--ssh-config``, the recipe's
``benchmark.ssh_config``), else ``$EDGEOPT_SSH_CONFIG``, passes another config file with ``-F``.
It runs in ``BatchMode`` (never prompts) and never weakens host key checking: an unknown or changed
host key is an :class:`~edgeopt.errors.EnvironmentProblem` telling the user to verify it.
Three steps, each with its own timeout: probe (find Python: ``~/edgeopt-venv/bin/python`` from
``scripts/provision_board.sh``, else ``python3``; list what is already copied), upload (runner and
model, content-addressed under ``~/.cache/edgeopt-bench`` on the board, skipped when present), run
(``runner.py --board-facts``). The entry is ``measured`` and carries a ``board`` object: device-tree
model, machine, kernel, cores, temperature, ``vcgencmd get_throttled``. Only POSIX ``sh``, ``cat``,
``mkdir``, ``mv`` and ``ls`` are needed on the board besides Python. As a runner of the registry
(:mod:`edgeopt.bench.registry`) this module is the ``ssh://`` target, ``measured``, and boards run in
parallel with each other (each is its own machine).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from edgeopt.bench.local import RUNNER_PATH, MeasurementTimeout, parse_runner_output, runner_args
from edgeopt.bench.stats import to_entry
from edgeopt.bench.target import RunSettings, Target
from edgeopt.errors import EnvironmentProblem, InputError
from edgeopt.types import LatencyEntry, Provenance

kind = "ssh"
prefix = "ssh://"
provenance = Provenance.MEASURED
parallel = True  # each board is its own machine: a fleet is measured at once
forms = ("ssh://[user@]host[:port]",)

SSH_CONFIG_ENV = "EDGEOPT_SSH_CONFIG"  # the user's default SSH config file; edgeopt never sets it
REMOTE_DIR = "$HOME/.cache/edgeopt-bench"
PROVISIONED_PYTHON = "$HOME/edgeopt-venv/bin/python"
CONNECT_TIMEOUT_S = 10
PROBE_TIMEOUT_S = 30.0
UPLOAD_MIN_TIMEOUT_S = 30.0
UPLOAD_BYTES_PER_S = 1_000_000  # a slow Wi-Fi board; the upload timeout scales with the file size
SSH_FAILED = 255  # the ssh client's own exit status for connection and authentication failures
PROBE_MARK = "edgeopt-probe"
TIMEOUT_EXIT, TIMEOUT_KILLED = 124, 137  # coreutils `timeout`: timed out / had to SIGKILL

# User and host are passed to ssh as arguments, never through a shell, but ssh itself refuses shell
# metacharacters and a leading '-' would read as an option: accept the portable name characters only.
_TARGET = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9_.][A-Za-z0-9_.-]*)@)?"
                     r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*)(?::(?P<port>[0-9]+))?/?$")


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect: ``host`` may be an alias from ``config`` (None: ssh's own config)."""

    user: str | None
    host: str
    port: int | None
    config: str | None = None

    @property
    def label(self) -> str:
        """``[user@]host[:port]`` as the user wrote it, for messages."""
        who = f"{self.user}@" if self.user else ""
        where = f":{self.port}" if self.port else ""
        return f"{who}{self.host}{where}"


def parse_ssh_target(text: str) -> SshTarget:
    """Parse ``ssh://[user@]host[:port]``; InputError naming the expected form otherwise."""
    match = _TARGET.match(text.strip())
    port = int(match["port"]) if match and match["port"] and len(match["port"]) <= 5 else None
    if not match or (match["port"] and not (port is not None and 0 < port < 65536)):
        raise InputError(f"bad SSH target {text!r}: use ssh://[user@]host[:port] with a user and host of "
                         "letters, digits, '.', '_' and '-' (not first), and a port in 1-65535, "
                         "e.g. ssh://pi@raspberrypi")
    return SshTarget(match["user"], match["host"].strip("[]"), port)


def ssh_command(target: SshTarget, remote: str) -> list[str]:
    """The ssh argv that runs ``remote`` (a POSIX sh command line) on the target."""
    client = shutil.which("ssh")
    if client is None:
        raise EnvironmentProblem("the OpenSSH client `ssh` is not installed: "
                                 "install it with `sudo apt-get install openssh-client`")
    argv = [client, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
    if target.config:
        argv += ["-F", target.config]
    if target.port:
        argv += ["-p", str(target.port)]
    if target.user:
        argv += ["-l", target.user]
    return [*argv, target.host, remote]


def explain_ssh_failure(target: SshTarget, stderr: str) -> str:
    """One line for a failed connection, naming the cause and the fix."""
    text = " ".join(stderr.split())
    label = target.label
    if "Permission denied" in text or "Too many authentication failures" in text:
        return (f"ssh://{label}: authentication failed: install your public key on the board "
                f"(ssh-copy-id {label}) or load it into ssh-agent; edgeopt never prompts for passwords")
    if "Host key verification failed" in text or "HOST IDENTIFICATION HAS CHANGED" in text:
        return (f"ssh://{label}: the board's host key is unknown or has changed: verify it and add it "
                f"to known_hosts (connect once with `ssh {label}`); edgeopt never disables host key checks")
    if "Could not resolve hostname" in text:
        return f"ssh://{label}: cannot resolve host {target.host!r}: check the name or your SSH config"
    if any(s in text for s in ("Connection refused", "timed out", "No route to host",
                               "Network is unreachable", "Connection reset", "Connection closed")):
        return f"ssh://{label}: unreachable ({_last_line(stderr)}): is the board on and sshd running?"
    return f"ssh://{label}: ssh failed: {_last_line(stderr) or 'no message'}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-1].split()) if lines else ""


def _ssh(target: SshTarget, remote: str, *, timeout: float, step: str, stdin_path: Path | None = None
         ) -> subprocess.CompletedProcess:
    """Run one step; connection failures and timeouts raise, remote exit statuses are returned."""
    argv = ssh_command(target, remote)
    try:
        if stdin_path is None:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        else:
            with stdin_path.open("rb") as handle:
                done = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=handle, check=False)
                done = subprocess.CompletedProcess(done.args, done.returncode,
                                                   done.stdout.decode(errors="replace"),
                                                   done.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        raise MeasurementTimeout(f"ssh://{target.label}: {step} did not finish within {timeout:g} s"
                                 ) from None
    if done.returncode == SSH_FAILED:
        raise EnvironmentProblem(explain_ssh_failure(target, done.stderr))
    return done


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def probe(target: SshTarget) -> tuple[str, set[str]]:
    """Find the board's Python and the files already copied; return (python command, file names)."""
    remote = (f'D="{REMOTE_DIR}"; mkdir -p "$D" || exit 90; PY=; '
              f'for c in "{PROVISIONED_PYTHON}" python3; do '
              'if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi; done; '
              f'echo "{PROBE_MARK} python=$PY"; ls -1 "$D"')
    done = _ssh(target, remote, timeout=PROBE_TIMEOUT_S + CONNECT_TIMEOUT_S, step="the probe")
    lines = done.stdout.splitlines()
    marks = [line for line in lines if line.startswith(PROBE_MARK)]
    if done.returncode != 0 or not marks:
        raise EnvironmentProblem(f"ssh://{target.label}: the board did not run a POSIX shell command "
                                 f"(status {done.returncode}): {_last_line(done.stderr) or 'no message'}")
    python = marks[0].split("python=", 1)[1].strip()
    if not python:
        raise EnvironmentProblem(f"ssh://{target.label}: no python3 on the board: install it "
                                 f"(sudo apt-get install python3) or run scripts/provision_board.sh "
                                 f"{target.label}")
    return python, {line.strip() for line in lines[lines.index(marks[0]) + 1:]}


def upload(target: SshTarget, local: Path, name: str, present: set[str]) -> None:
    """Copy ``local`` to the board's cache as ``name`` unless it is already there (atomic rename)."""
    if name in present:
        return
    remote = f'D="{REMOTE_DIR}"; cat > "$D/{name}.partial" && mv "$D/{name}.partial" "$D/{name}"'
    timeout = UPLOAD_MIN_TIMEOUT_S + local.stat().st_size / UPLOAD_BYTES_PER_S
    done = _ssh(target, remote, timeout=timeout, step=f"copying {local.name}", stdin_path=local)
    if done.returncode != 0:
        raise EnvironmentProblem(f"ssh://{target.label}: copying {local.name} failed: "
                                 f"{_last_line(done.stderr) or f'status {done.returncode}'}")


def run_ssh(model: str, target: SshTarget, spec: RunSettings, threads: int) -> dict:
    """Measure ``model`` on the board ``target`` with ``spec`` at ``threads``.

    Returns:
        The board runner's latency entry (``measured``) with a ``board`` object.

    Raises:
        EnvironmentProblem: ssh missing, board unreachable, authentication or host key failure,
            no Python or no LiteRT runtime on the board (with the install command), a step timed out.
        InputError: the board's runtime rejected the model or the inputs.
        MeasurementFailed: the runner crashed on the board.
    """
    python, present = probe(target)
    runner_name = f"runner-{_digest(RUNNER_PATH)}.py"
    model_path = Path(model)
    model_name = f"model-{_digest(model_path)}.tflite"
    upload(target, RUNNER_PATH, runner_name, present)
    upload(target, model_path, model_name, present)
    inputs_name = None
    if spec.inputs_file:
        inputs_path = Path(spec.inputs_file)
        if not inputs_path.is_file():
            raise InputError(f"inputs file {spec.inputs_file} does not exist")
        inputs_name = f"inputs-{_digest(inputs_path)}{inputs_path.suffix}"
        upload(target, inputs_path, inputs_name, present)
    args = runner_args(model_name, spec, threads, inputs=inputs_name, board_facts=True)
    timeout = spec.timeout
    # The board enforces the timeout too (coreutils `timeout` where present), so a run the client
    # gave up on does not keep a board core busy.
    remote = (f'T=; if command -v timeout >/dev/null 2>&1; then T="timeout -k 5 {timeout:g}"; fi; '
              f'cd "{REMOTE_DIR}" && $T {python_word(python)} {runner_name} '
              + " ".join(shlex.quote(a) for a in args))
    done = _ssh(target, remote, timeout=timeout, step="the benchmark")
    if done.returncode in (TIMEOUT_EXIT, TIMEOUT_KILLED) and "{" not in done.stdout:
        raise MeasurementTimeout(f"ssh://{target.label}: the benchmark did not finish within {timeout:g} s "
                                 "(stopped on the board)")
    if "SyntaxError" in done.stderr and "{" not in done.stdout:
        raise EnvironmentProblem(f"ssh://{target.label}: the board's {python} is too old for the runner "
                                 "(Python >= 3.7 needed): run scripts/provision_board.sh")
    try:
        entry = parse_runner_output(done.stdout, done.stderr, done.returncode, f"ssh://{target.label}",
                                    model=model)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(f"{exc} (or run scripts/provision_board.sh {target.label})") from None
    return entry


def python_word(python: str) -> str:
    """The probe's Python as a shell word; ``$HOME`` must still expand on the board."""
    if python.startswith("$HOME/"):
        return '"$HOME/' + python[len("$HOME/"):] + '"'
    return shlex.quote(python)


def parse(text: str) -> Target:
    """``ssh://[user@]host[:port]``; InputError naming the expected form otherwise."""
    parse_ssh_target(text)
    name = text.strip()
    return Target(kind, name[len(prefix):], name, provenance)


def board(target: Target, spec: RunSettings) -> SshTarget:
    """Where to connect for ``target``, with the spec's SSH config (else ``$EDGEOPT_SSH_CONFIG``).

    Raises:
        InputError: the SSH config file does not exist.
    """
    config = spec.ssh_config or os.environ.get(SSH_CONFIG_ENV) or None
    if config is not None and not Path(config).is_file():
        raise InputError(f"SSH config file {config} does not exist")
    return replace(parse_ssh_target(target.name), config=config)


def run(model_path: str, target: Target, spec: RunSettings, threads: int) -> LatencyEntry:
    """The registry's entry point: one measurement on a board."""
    return to_entry(run_ssh(model_path, board(target, spec), spec, threads))
