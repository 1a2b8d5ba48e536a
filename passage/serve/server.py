"""Run the app with uvicorn: bind first (a clear error if the address is taken), serve until
SIGTERM or Ctrl-C, let in-flight requests finish, then return (exit status 0)."""

from __future__ import annotations

import math
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

SWITCH_SECONDS = 0.001  # the GIL switch interval while serving (sys.setswitchinterval)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host!r}: {e.strerror}; give --host an IP address "
                      "such as 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # answers go out at once (their header and body are separate writes), not after the
    # client's delayed ACK: accepted connections inherit this on Linux
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror}; choose another --port "
                      "(or stop the program using it)") from None
    sock.listen(2048)
    return sock


def run(app: Callable[..., Any] | str, host: str = "127.0.0.1", port: int = 8000,
        log_level: str = "info", drain_seconds: float = 30.0) -> bool:
    """Serve ``app`` on host:port until SIGTERM / SIGINT; in-flight requests get up to
    ``drain_seconds`` to finish. False if the app failed to start (uvicorn logged why)."""
    import uvicorn

    sock = bind(host, port)
    shown = sock.getsockname()
    print(f"passage serve: listening on http://{_url_host(shown[0])}:{shown[1]}",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=math.ceil(drain_seconds))
    server = uvicorn.Server(config)
    # uvicorn raises the signal again once it has shut down; a handler of our own takes it, so
    # a drained SIGTERM ends the process with status 0 rather than killed by the signal
    previous = signal.signal(signal.SIGTERM, _stopped)
    # Under load the event loop holds the GIL almost all the time; a batch thread waiting for
    # it (to hand its worker the next batch) gets it after the switch interval, and the
    # worker's core idles meanwhile: 1 ms instead of Python's 5 (CHANGELOG: idle 3.5 -> 2.3%)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_SECONDS)
    try:
        server.run(sockets=[sock])
    finally:
        sys.setswitchinterval(interval)
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return bool(server.started)


def _stopped(signum, frame) -> None:
    print("passage serve: stopped", file=sys.stderr, flush=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
