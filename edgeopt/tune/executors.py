"""Where trials run: in this process, in a local process pool, or as Ray tasks on a cluster.

Every executor takes :class:`Job` s and hands back each one's result dict when it finishes; the
driver alone writes the study (its journal and trial folders), so workers never touch it.

* ``local`` with one worker runs trials here, one after the other (no second TensorFlow start-up);
  with more, a pool of spawned processes, each loading the base once.

A study that searches training settings has no one base: a job either comes with the saved base it
starts from (``submit(job, base)``), loaded once per worker, or trains its own in the worker.
* ``ray`` runs each trial as a Ray task reserving ``cpus`` CPUs on an existing cluster
  (``address``, else ``RAY_ADDRESS``; with neither, a local cluster this process starts). The base
  goes to the object store once; each Ray worker process loads it once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from edgeopt.errors import EnvironmentProblem
from edgeopt.tune.trial import Base, Job, load_base, run

RAY_INSTALL = "pip install 'edgeopt[ray]'"


class Inline:
    """Trials in this process, one at a time."""

    def __init__(self, base: Base | None):
        load_base(base)
        self.workers = 1
        self._done: list[dict[str, Any]] = []

    def submit(self, job: Job, base: Base | None = None) -> None:
        self._done.append(run(job, base))

    def wait(self) -> list[dict[str, Any]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        pass


class Pool:
    """Trials in a pool of spawned worker processes (TensorFlow does not survive a fork)."""

    def __init__(self, base: Base | None, workers: int):
        self.workers = workers
        threads = max(1, (os.cpu_count() or workers) // workers)
        self._threads = threads
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=load_base,
            initargs=(base, threads),
        )
        self._running: set = set()

    def submit(self, job: Job, base: Base | None = None) -> None:
        self._running.add(self._pool.submit(run, job, base, self._threads))

    def wait(self) -> list[dict[str, Any]]:
        if not self._running:
            return []
        done, self._running = wait(self._running, return_when=FIRST_COMPLETED)
        self._running = set(self._running)
        results = []
        for future in done:
            try:
                results.append(future.result())
            except Exception as exc:  # the worker process died (out of memory, a crash in a kernel)
                raise EnvironmentProblem(
                    f"a tune worker process died ({type(exc).__name__}: {exc}); "
                    "finished trials are kept; run the same command again to resume"
                ) from None
        return results

    def close(self) -> None:
        for future in self._running:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(self._pool, "_processes", {}).values()):  # a trial may be mid-fit
            process.terminate()


def _ray():
    _token_auth_when_a_token_is_at_hand()  # before Ray reads its configuration on import
    try:
        import ray
    except ImportError:
        raise EnvironmentProblem(
            f"--executor ray needs Ray, which is not installed; install it with: {RAY_INSTALL}"
        ) from None
    return ray


def check_ray() -> None:
    """Fail before any work when Ray is missing."""
    _ray()


def _ray_trial(job: Job, base: Base | None, threads: int) -> dict[str, Any]:
    return run(job, base, threads)


def _probe(address: str) -> None:
    """Fail in seconds, not minutes, when a ``host:port`` cluster address does not answer."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it (ray start --head) "
            "or fix --address / RAY_ADDRESS"
        ) from None


def _token_auth_when_a_token_is_at_hand() -> None:
    """Ray 2.59+ clusters started with ``ray start --head`` require a token, but a client joining
    one does not send the token it has unless ``RAY_AUTH_MODE=token``: the GCS then answers
    "InvalidAuthToken" and the client retries for minutes. With a token at hand (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) and no mode chosen, send it."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if (
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").is_file()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


def connect_ray(address: str | None) -> bool:
    """Connect this process to the Ray cluster at ``address`` (else ``RAY_ADDRESS``; with neither,
    start a local one), before any work is done. Returns whether this call connected (and so must
    :func:`disconnect_ray`)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _probe(address)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=True,
        )
    except ConnectionError as exc:
        raise EnvironmentProblem(
            f"cannot reach the Ray cluster at {address}: {' '.join(str(exc).split())[:200]}; start it "
            "(ray start --head), fix --address / RAY_ADDRESS, or give its token (RAY_AUTH_TOKEN)"
        ) from None
    except Exception as exc:
        if type(exc).__name__ == "AuthenticationError":
            raise EnvironmentProblem(
                f"the Ray cluster at {address} refused this client's token: set RAY_AUTH_TOKEN to the "
                "cluster's token (ray get-auth-token on the head node)"
            ) from None
        raise EnvironmentProblem(
            f"cannot start or reach Ray ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None
    return True


def disconnect_ray() -> None:
    _ray().shutdown()


class RayTasks:
    """Each trial a Ray task with its own CPU reservation, on the cluster :func:`connect_ray` joined."""

    def __init__(self, base: Base | None, workers: int, cpus: int = 1):
        ray = _ray()
        self.ray, self.workers = ray, workers
        self._remote = ray.remote(num_cpus=cpus, max_retries=0)(_ray_trial)
        self._bases: dict[str, Any] = {}  # base key -> object ref: each base goes to the store once
        self._base = self._put(base)
        self._cpus = cpus
        self._running: list = []

    def _put(self, base: Base | None):
        if base is None:
            return None
        if base.key not in self._bases:
            self._bases[base.key] = self.ray.put(base)
        return self._bases[base.key]

    def submit(self, job: Job, base: Base | None = None) -> None:
        ref = self._put(base) if base is not None else self._base
        self._running.append(self._remote.remote(job, ref, self._cpus))

    def wait(self) -> list[dict[str, Any]]:
        if not self._running:
            return []
        done, self._running = self.ray.wait(self._running, num_returns=1)
        results = []
        for ref in done:
            try:
                results.append(self.ray.get(ref))
            except Exception as exc:  # the task's worker died: the cluster's doing, not the trial's
                raise EnvironmentProblem(
                    f"a Ray trial task failed ({type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:200]}); finished trials are kept; "
                    "run the same command again to resume"
                ) from None
        return results

    def close(self) -> None:
        for ref in self._running:
            with contextlib.suppress(Exception):  # already finished, or the cluster is gone
                self.ray.cancel(ref, force=True)


def make_executor(kind: str, base: Base | None, workers: int, cpus: int = 1):
    if kind == "ray":
        return RayTasks(base, workers, cpus)
    return Inline(base) if workers == 1 else Pool(base, workers)
