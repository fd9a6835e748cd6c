"""Device fixtures: a real arm64 sysroot under qemu-user, and a real sshd whose login is that "board".

The sysroot is built once by scripts/make_arm_sysroot.sh into ~/.cache/edgeopt/arm-sysroot (or
$EDGEOPT_ARM_SYSROOT) and reused. sshd is Debian's openssh-server, started on 127.0.0.1 with throwaway
host and user keys; its ForceCommand wrapper gives the login a clean PATH whose ``python3`` is the
emulated aarch64 Python, and a fresh $HOME, so ``ssh://`` runs end to end against an ARM "board".
Client-side, an SSH config file (passed through $EDGEOPT_SSH_CONFIG, as a user would use
~/.ssh/config) defines the board aliases, including broken ones for the failure tests.
Tools missing and not installable make the tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOARD_CPU = "cortex-a72"


def _ensure_tools() -> str | None:
    """Install sshd and qemu-user-static when possible; return a skip reason or None."""
    def missing() -> list[str]:
        found = {"sshd": shutil.which("sshd") or Path("/usr/sbin/sshd").exists(),
                 "ssh": shutil.which("ssh"), "ssh-keygen": shutil.which("ssh-keygen"),
                 "qemu-aarch64-static": shutil.which("qemu-aarch64-static")}
        return [name for name, ok in found.items() if not ok]

    if missing():
        subprocess.run(["bash", str(REPO / "scripts" / "install_test_tools.sh")], check=False,
                       capture_output=True, timeout=600)
    absent = missing()
    return f"not installed and not installable here: {', '.join(absent)}" if absent else None


@pytest.fixture(scope="session")
def arm_sysroot() -> Path:
    """A complete arm64 sysroot (built once, cached across runs)."""
    reason = _ensure_tools()
    if reason:
        pytest.skip(reason)
    from edgeopt.bench.qemu import default_sysroot

    root = default_sysroot()
    build = subprocess.run(["bash", str(REPO / "scripts" / "make_arm_sysroot.sh"), str(root)],
                           capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, PYTHON=sys.executable))
    if build.returncode != 0:
        pytest.skip("cannot build the arm64 sysroot (registries unreachable?): "
                    + build.stderr.strip()[-300:])
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny float32 and int8 .tflite models (8x8x1 conv net)."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    try:
        from test_benchmark_local import build_tiny_models
    finally:
        sys.path.pop(0)
    return build_tiny_models(tmp_path_factory.mktemp("device_models"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path.with_suffix(".pub").read_text().strip()


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@dataclass
class Board:
    """The emulated board's sshd and the client-side files that reach it."""

    port: int
    ssh_config: Path
    home: Path
    user: str


@pytest.fixture(scope="session")
def ssh_board(arm_sysroot, tmp_path_factory) -> Board:
    """sshd on 127.0.0.1 whose login runs the emulated aarch64 Python (Cortex-A72)."""
    from edgeopt.bench.qemu import find_qemu, sysroot_view

    base = tmp_path_factory.mktemp("sshd")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    host_key = base / "host_key"
    host_pub = _keygen(host_key)
    client_pub = _keygen(base / "client_key")
    _keygen(base / "stranger_key")  # a key the board does not authorise
    (base / "authorized_keys").write_text(client_pub + "\n")
    view = sysroot_view(BOARD_CPU, arm_sysroot)
    qemu = find_qemu()
    python = view / "usr" / "bin" / "python3.11"
    site = view / "usr" / "lib" / "python3" / "dist-packages"

    # A numpy-only site (no LiteRT) for the "board without a runtime" case.
    numpy_only = base / "numpy-only-site"
    numpy_only.mkdir()
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (numpy_only / name).symlink_to(site / name)
    tools = base / "tools"  # POSIX tools only, no python at all
    tools.mkdir()
    for tool in ("sh", "cat", "mkdir", "mv", "ls", "env", "timeout"):
        (tools / tool).symlink_to(shutil.which(tool))

    bin_dir = base / "board-bin"
    bin_dir.mkdir()
    _script(bin_dir / "python3",
            f'#!/bin/sh\nQEMU_CPU={BOARD_CPU} exec {qemu} -L {view} {python} "$@"\n')
    norun_dir = base / "board-noruntime-bin"
    norun_dir.mkdir()
    _script(norun_dir / "python3",
            f'#!/bin/sh\nPYTHONPATH={numpy_only} QEMU_CPU={BOARD_CPU} '
            f'exec {qemu} -L {view} {python} -S "$@"\n')
    home = base / "board-home"
    home.mkdir()
    login = _script(base / "board-login", f"""#!/bin/sh
# ForceCommand: every login is the emulated board, whatever the client asked for.
export HOME={home}
case "$EDGEOPT_TEST_BOARD" in
  nopython) export PATH={tools} ;;
  noruntime) export PATH={norun_dir}:{tools} ;;
  *) export PATH={bin_dir}:{tools} ;;
esac
cd "$HOME"
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
""")
    port = _free_port()
    config = base / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {base / 'sshd.pid'}
AuthorizedKeysFile {base / 'authorized_keys'}
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers {user}
AcceptEnv EDGEOPT_TEST_BOARD
ForceCommand {login}
""")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    log = base / "sshd.log"
    with log.open("w") as log_handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=log_handle)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.skip(f"sshd did not start: {log.read_text().strip()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.skip("sshd did not listen within 15 s")

    known_hosts = base / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    wrong_hosts = base / "wrong_known_hosts"
    wrong_hosts.write_text(f"[127.0.0.1]:{port} {client_pub}\n")  # a different key for that host
    common = (f"  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentitiesOnly yes\n"
              f"  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n")
    ssh_config = base / "ssh_config"
    ssh_config.write_text(
        f"Host board-a board-b\n{common}  IdentityFile {base / 'client_key'}\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        f"Host board-nopython\n{common}  IdentityFile {base / 'client_key'}\n"
        f"  UserKnownHostsFile {known_hosts}\n  SetEnv EDGEOPT_TEST_BOARD=nopython\n"
        f"Host board-noruntime\n{common}  IdentityFile {base / 'client_key'}\n"
        f"  UserKnownHostsFile {known_hosts}\n  SetEnv EDGEOPT_TEST_BOARD=noruntime\n"
        f"Host board-stranger\n{common}  IdentityFile {base / 'stranger_key'}\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        f"Host board-wrong-hostkey\n{common}  IdentityFile {base / 'client_key'}\n"
        f"  UserKnownHostsFile {wrong_hosts}\n"
        f"Host board-down\n  HostName 127.0.0.1\n  Port {_free_port()}\n  ConnectTimeout 5\n")
    yield Board(port=port, ssh_config=ssh_config, home=home, user=user)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def ssh_env(ssh_board, monkeypatch) -> Board:
    """Point edgeopt's ssh client at the test board's config file."""
    monkeypatch.setenv("EDGEOPT_SSH_CONFIG", str(ssh_board.ssh_config))
    return ssh_board
