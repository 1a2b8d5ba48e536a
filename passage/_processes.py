"""Worker processes for one training job, used by ``passage.distributed`` and ``passage.ensemble``.

``spawn`` writes the job (model functions, data, fit arguments) to a private temporary folder,
starts the workers, waits for them and brings their models back through model files (no
pickle on the way back). Nothing outlives the call, however it ends:

- an error or Ctrl-C in the parent stops the workers, and the folder is removed;
- SIGTERM to the parent does the same before the process ends by that SIGTERM (a handler in
  the main thread while the workers run, when SIGTERM had its default action);
- SIGKILL to the parent (or any death): each worker ends too, by ``PR_SET_PDEATHSIG`` on Linux
  and by a thread watching the parent's pid elsewhere. The folder a killed parent leaves
  behind is removed by the next ``spawn`` (it records its owner's pid).
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import inspect
import json
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import cast

import torch
import torch.multiprocessing as mp

from passage import _checks as checks
from passage.io import load, save
from passage.models import RNN

UNSUPPORTED = ("checkpoint", "resume", "path")  # fit options not available here yet
JOB_FILE = "job.pickle"  # what spawn hands its workers: make_models and the data
OWNER_FILE = "owner.json"  # who made the job folder: for removing the folders of killed runs
PREFIX = "passage-ddp-"  # the job folders' names in the temporary directory
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL = 0.25  # seconds between a worker's checks that its parent is alive

# (rank, world, make_models, X, Y, fit_kwargs, backend, timeout) -> the trained model
TrainFunction = Callable[..., RNN]


# -- checks --------------------------------------------------------------------------------------
def check_fit_kwargs(fit_kwargs: dict, caller: str = "fit_distributed") -> None:
    known = set(inspect.signature(RNN.fit).parameters) - {"self", "trX", "trY"}
    unknown = sorted(set(fit_kwargs) - known)
    if unknown:
        raise TypeError(f"RNN.fit has no argument(s) {unknown}; it takes {sorted(known)}")
    bad = [k for k in UNSUPPORTED if fit_kwargs.get(k)]
    if bad:
        raise ValueError(f"{bad} are not supported by {caller} yet: train without them, "
                         "then save the returned model with passage.utils.save")
    checks.check_fit_kwargs(fit_kwargs)  # bad values refused here, before any process starts


def check_threads(threads) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive int (or None), got {threads!r}")


def check_picklable(make_model) -> None:
    how = ("define it with def at the top level of a module (not a lambda or a nested "
           "function), or use functools.partial of such a function")
    try:
        pickle.dumps(make_model)
    except Exception as e:
        raise TypeError(f"make_model must be picklable to be sent to the worker processes "
                        f"({type(e).__name__}: {e}); {how}") from None
    func = getattr(make_model, "func", make_model)  # functools.partial
    main = sys.modules.get("__main__")
    if getattr(func, "__module__", None) == "__main__" and not hasattr(main, "__file__"):
        raise TypeError("make_model is defined in an interactive session (__main__ has no "
                        "file), which the worker processes cannot import: define it in a .py "
                        "module and import it from there")


def check_not_in_worker_import(name: str) -> None:
    if getattr(mp.current_process(), "_inheriting", False):
        raise RuntimeError(f"{name} was called while a worker process was importing your "
                           "script: the workers import it to find your model function, so the "
                           "call must sit under `if __name__ == '__main__':`")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(threads: int | None, local_world: int) -> None:
    torch.set_num_threads(threads or max(1, cores() // local_world))


# -- the parent ----------------------------------------------------------------------------------
def spawn(train: TrainFunction, workers: int, make_models: list, X, Y, fit_kwargs: dict,
          threads: int | None, backend: str | None, timeout: float,
          returns: int) -> list[RNN]:
    """Run ``train(rank, workers, make_models, X, Y, fit_kwargs, backend, timeout)`` in
    ``workers`` processes (``train`` a module-level function, so the workers can import it);
    the models of ranks ``0 .. returns - 1`` come back, with their ``history_`` and ``costs_``.
    """
    remove_stale_job_folders()
    with _cleanup_on_sigterm(), \
            tempfile.TemporaryDirectory(prefix=PREFIX, ignore_cleanup_errors=True) as tmp:
        with open(os.path.join(tmp, OWNER_FILE), "w") as f:
            json.dump(_owner(), f)
        # The data goes through a file in this private directory, not through the processes'
        # start-up pipes: a worker that dies while starting (e.g. a script without the
        # ``if __name__ == '__main__':`` guard) can then never leave the parent blocked on a
        # pipe write, and the error below is raised.
        with open(os.path.join(tmp, JOB_FILE), "wb") as f:
            pickle.dump((train, list(make_models), X, Y, fit_kwargs, returns), f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        args = (workers, _free_port(), tmp, threads, backend, timeout, os.getpid())
        # the workers' parent-death signal is tied to this thread, which waits for them below
        ctx = mp.start_processes(_worker, args=args, nprocs=workers, join=False,
                                 start_method="spawn")
        try:
            while not ctx.join(timeout=1.0):
                pass
        except mp.ProcessRaisedException as e:
            raise _worker_error(tmp, e.error_index) from e
        except mp.ProcessExitedException as e:
            raise RuntimeError(f"worker process {e.error_index} died (exit code {e.exit_code}"
                               f"{', signal ' + e.signal_name if e.signal_name else ''}; "
                               "its traceback is above), e.g. out of memory, or a script that "
                               "calls fit_distributed or fit_ensemble outside "
                               "`if __name__ == '__main__':`; "
                               "the other workers were stopped") from None
        finally:  # e.g. KeyboardInterrupt or SIGTERM: never leave workers behind
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
                p.join(10)
            for name in getattr(ctx, "error_files", ()):  # torch's, in /tmp, written on failure
                with contextlib.suppress(OSError, TypeError):
                    os.remove(name)
        return [_returned_model(tmp, rank) for rank in range(returns)]


def _returned_model(tmp: str, rank: int) -> RNN:
    model = cast(RNN, load(os.path.join(tmp, f"model{rank}.passage")))
    with open(os.path.join(tmp, f"history{rank}.json")) as f:
        for name, value in json.load(f).items():
            if value is not None:
                setattr(model, name, value)
    return model


class _Terminated(BaseException):
    """Raised by the SIGTERM handler of ``_cleanup_on_sigterm`` to unwind ``spawn``."""


@contextlib.contextmanager
def _cleanup_on_sigterm() -> Iterator[None]:
    """While the block runs, a SIGTERM unwinds it (so its ``finally`` and ``with`` clean up:
    workers stopped, job folder removed), then ends the process by that same SIGTERM, as it
    would have ended without this. Only where SIGTERM has its default action, which would
    skip all cleanup (a handler of the program's own, or SIG_IGN, is left as it is), and only
    in the main thread, the one that runs Python's signal handlers. The handler is put back
    when the block ends."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    fired: list[int] = []

    def on_sigterm(signum, frame):
        if not fired:  # a second SIGTERM must not break the cleanup the first one started
            fired.append(signum)
            raise _Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if fired:
        os.kill(os.getpid(), signal.SIGTERM)  # default action: the process ends here
        raise SystemExit(128 + signal.SIGTERM)  # only if the signal could not end it


def _owner() -> dict:
    """What identifies the process that made a job folder, to tell later whether it is dead."""
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = None
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_namespace": pid_namespace}


def remove_stale_job_folders(tmp_root: str | None = None) -> list[str]:
    """Remove the job folders left in the temporary directory by parents that were killed
    (SIGKILL leaves no chance to clean up): folders of ours whose owner, on this machine and
    in this pid namespace, no longer exists. Returns the folders removed."""
    root = tmp_root or tempfile.gettempdir()
    removed: list[str] = []
    me, uid = _owner(), getattr(os, "getuid", lambda: None)()
    try:
        names = [n for n in os.listdir(root) if n.startswith(PREFIX)]
    except OSError:
        return removed
    for name in names:
        folder = os.path.join(root, name)
        try:
            if uid is not None and os.lstat(folder).st_uid != uid:
                continue  # another user's
            with open(os.path.join(folder, OWNER_FILE)) as f:
                owner = json.load(f)
            pid = int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a job folder of this version, or being written
        if (owner.get("host"), owner.get("pid_namespace")) != (me["host"], me["pid_namespace"]) \
                or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 only asks); unsure counts as alive."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process, or no such pid number
        return True
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_error(tmp: str, rank: int) -> Exception:
    """The exception a worker raised, as the same built-in type when there is one."""
    try:
        with open(os.path.join(tmp, f"error{rank}.json")) as f:
            err = json.load(f)
    except OSError:
        return RuntimeError(f"worker process {rank} failed (traceback above)")
    message = f"{err['message']} (in worker process {rank})"
    cls = getattr(builtins, err["type"], None)
    try:
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(message)
    except TypeError:  # a built-in exception that needs other arguments
        pass
    return RuntimeError(message)


# -- a worker ------------------------------------------------------------------------------------
def _worker(rank, world, port, tmp, threads, backend, timeout, parent):
    """Entry point of a started process: runs the job's ``train`` and, for the ranks that
    return a model, leaves it in ``tmp`` (a model file and its history, no pickle). A failing
    process leaves its error there for the parent to re-raise."""
    _exit_with_parent(parent)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    _thread_lock_for_progress_bars()
    try:
        with open(os.path.join(tmp, JOB_FILE), "rb") as f:  # written by spawn, just now
            train, make_models, X, Y, fit_kwargs, returns = pickle.load(f)
        set_threads(threads, world)
        model = train(rank, world, make_models, X, Y, fit_kwargs, backend, timeout)
        if rank < returns:
            save(model, os.path.join(tmp, f"model{rank}.passage"))
            with open(os.path.join(tmp, f"history{rank}.json"), "w") as f:
                json.dump({"history_": model.history_, "costs_": model.costs_,
                           "last_epoch_": model.last_epoch_,
                           "best_epoch_": getattr(model, "best_epoch_", None)}, f, default=float)
    except BaseException as e:
        with open(os.path.join(tmp, f"error{rank}.json"), "w") as f:
            json.dump({"type": type(e).__name__, "message": str(e)}, f)
        raise
    # Skip interpreter shutdown: a gloo thread of DDP's (never freed) that releases a finished
    # work item during shutdown needs the GIL and aborts the process (SIGABRT, ~1 run in 25).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _exit_with_parent(parent: int) -> None:
    """End this worker as soon as its parent (pid ``parent``) dies, however it dies, so no
    orphan keeps training. On Linux the kernel kills it (``PR_SET_PDEATHSIG`` with SIGKILL:
    torch's own choice, SIGINT, is ignored by a script started in the background, and can be
    caught). That signal fires when the parent's *thread* that started the worker ends: the
    one that waits in ``spawn`` until the workers are done. A daemon thread watching the
    parent's pid covers the other systems and a parent that died before the ``prctl``."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL),
                                                    0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="passage-watch-parent",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"passage worker {os.getpid()}: its parent process {parent} died; "
                         "stopping\n")
        sys.stderr.flush()
    os._exit(1)


def _thread_lock_for_progress_bars() -> None:
    """tqdm's bars share a multiprocessing lock: a named semaphore that the ``os._exit`` ending a
    worker would leave behind ("leaked semaphore" at shutdown). One process's bars need only a
    thread lock."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())
