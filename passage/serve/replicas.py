"""Copies of the model in worker processes: the service's batches run there, a process per core.

In one process, the event loop and the batch workers share one GIL: whatever Python a batch
runs (tokenizing, building tensors, the layers between scans) makes the event loop wait, and
the other way round, so under load the cores sit idle part of the time. ``Replicas`` starts
``n`` processes (a new Python running ``_serve``, nothing inherited but a socket), each
loading the model file, checking its sha256 against the server's, and running batches on one
core; a batch worker thread of the server hands its batch to its own process and waits
without holding the GIL.

A process that dies (killed, out of memory) is replaced, and the batch it held runs once more
on the new one (a prediction is a pure function of its texts); a batch that kills that one too
fails. Each process ends with the server: when its socket closes, and by
``PR_SET_PDEATHSIG`` on Linux if the server is killed.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("passage.serve")
START_SECONDS = 120.0  # for a process to load the model and answer a first batch


class ReplicaError(RuntimeError):
    """A worker process failed or died (answered with 500; the error is in the server log)."""


class _Died(ReplicaError):
    """The process ended (or its socket closed) while a job was on its way."""


class _Process:
    """One worker process and the server's end of its socket."""

    def __init__(self, path: str, sha256: str | None):
        parent, child = socket.socketpair()
        try:
            # -P: not the working directory first on the path, the server's passage (env)
            command = [sys.executable, "-P", "-c", "import sys; from passage.serve.replicas "
                       "import _serve; _serve(*sys.argv[1:])", str(child.fileno()),
                       str(os.getpid()), path, sha256 or "-"]
            self.proc = subprocess.Popen(command, pass_fds=(child.fileno(),),
                                         stdin=subprocess.DEVNULL, env=_child_env())
        finally:
            child.close()
        self.conn = Connection(parent.detach())

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        if not self.conn.poll(timeout):
            self.close()
            raise ReplicaError(f"a worker process did not start within {timeout:.0f} s")
        status, payload = self._receive()
        if status != "ready":
            self.close()
            raise ReplicaError(f"a worker process could not load the model: {payload}")

    def ask(self, what: str, payload: Any) -> Any:
        try:
            self.conn.send((what, payload))
        except OSError as e:
            raise _Died(f"the worker process {self.proc.pid} is gone ({e})") from None
        status, result = self._receive()
        if status == "error":
            raise result
        return result

    def _receive(self) -> tuple[str, Any]:
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            code = self.proc.poll()
            raise _Died(f"the worker process {self.proc.pid} died"
                        + (f" (exit status {code})" if code is not None else "")) from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 10.0) -> None:
        self.conn.close()  # the process sees its socket close and ends
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _child_env() -> dict[str, str]:
    """The server's environment, with this very ``passage`` first on the path: the processes
    run the server's code even where another copy is installed."""
    import passage

    here = os.path.dirname(os.path.dirname(os.path.abspath(passage.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
    return env


class Replicas:
    """``n`` processes serving the model file at ``path`` (its sha256 checked by each).

    ``attach`` (a batch worker thread's initializer) gives the calling thread a process of its
    own; ``answers``, ``encoded`` and ``trace`` then run there (as the ``Predictor``'s).
    """

    def __init__(self, path: str, n: int, sha256: str | None = None):
        self.path, self.n, self.sha256 = os.path.abspath(path), int(n), sha256
        self._free: list[_Process] = []
        self._all: list[_Process] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the processes and wait until each has loaded the model and warmed up."""
        procs = [_Process(self.path, self.sha256) for _ in range(self.n)]
        try:
            for p in procs:
                p.wait_ready()
        except BaseException:
            for p in procs:
                p.close()
            raise
        with self._lock:
            self._all, self._free = list(procs), list(procs)

    def attach(self) -> None:
        """Give the calling thread one of the processes (started if none is free)."""
        with self._lock:
            proc = self._free.pop() if self._free else None
        self._local.proc = proc

    def answers(self, texts: list[str]) -> list:
        return self._ask("answers", texts)

    def encoded(self, texts: list[str]) -> list[bytes]:
        return self._ask("encoded", texts)

    def trace(self, text: str) -> dict:
        return self._ask("trace", text)

    def _ask(self, what: str, payload: Any) -> Any:
        """Run the job on this thread's process. Jobs are pure (a prediction), so a job whose
        process died under it runs once more on a new process; if that one dies too (the
        job itself kills it, say by memory), the job fails."""
        for attempt in (1, 2):
            proc = getattr(self._local, "proc", None)
            if proc is None or not proc.alive():  # its first use, or the last one died
                proc = self._replace(proc)
            try:
                return proc.ask(what, payload)
            except _Died:
                if attempt == 2:
                    raise
                self._local.proc = self._replace(proc)
        raise AssertionError("unreachable")

    def _replace(self, proc: _Process | None) -> _Process:
        if proc is not None:
            log.error("worker process %d died (exit status %s); starting another",
                      proc.proc.pid, proc.proc.poll())
            self._forget(proc)
        new = _Process(self.path, self.sha256)
        with self._lock:
            self._all.append(new)
        new.wait_ready()
        self._local.proc = new
        return new

    def _forget(self, proc: _Process) -> None:
        proc.close(0)
        with self._lock:
            self._all = [p for p in self._all if p is not proc]

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.proc.pid for p in self._all if p.alive()]

    def stop(self) -> None:
        """End every process (after the batch workers have stopped)."""
        with self._lock:
            procs, self._all, self._free = self._all, [], []
        for p in procs:
            p.close()


# -- a worker process ----------------------------------------------------------------------------
def _serve(fd: str, parent: str, path: str, sha256: str) -> None:
    """The process's loop (its arguments as on its command line): load the model, warm up,
    then answer (what, payload) messages until the server closes the socket."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle: it drains
    from passage._processes import _exit_with_parent  # (then closes the socket)

    _exit_with_parent(int(parent))
    conn = Connection(int(fd))
    try:
        import torch

        from passage.layers import inference
        from passage.parallel import one_core
        from passage.serve.predictor import Predictor, file_sha256

        one_core()
        if sha256 != "-" and file_sha256(path) != sha256:
            raise ValueError(f"the model file {os.path.basename(path)!r} changed on disk "
                             "after the server read it")
        predictor = Predictor(path)
        with torch.inference_mode(), inference():
            predictor.encoded(["Warming up."])  # (what batches run)
    except Exception as e:
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    jobs: dict[str, Callable[[Any], Any]] = {"answers": predictor.answers,
                                             "encoded": predictor.encoded,
                                             "trace": predictor.trace}
    while True:
        try:
            what, payload = conn.recv()
        except (EOFError, OSError):
            return
        try:
            with torch.inference_mode(), inference():
                result = ("ok", jobs[what](payload))
        except Exception as e:  # the request's error, raised again in the server
            result = ("error", _portable(e))
        try:
            conn.send(result)
        except OSError:
            return


def _portable(error: Exception) -> Exception:
    """The error itself if it pickles, else a RuntimeError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
