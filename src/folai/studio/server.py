"""Run the studio app with uvicorn on a socket bound here (so the real port is known up front)."""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from typing import Any

from ..errors import FolaiError, require

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
#: seconds the studio waits for open requests when it is stopped (Ctrl+C, SIGTERM, SIGHUP)
GRACEFUL_SECONDS = 3


def is_loopback(host: str) -> bool:
    """True for loopback addresses and 'localhost'."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _ShutdownQuiet:
    """A filter on uvicorn's error log: once the studio is stopping, the requests still open after
    :data:`GRACEFUL_SECONDS` are cancelled, and uvicorn logged each as "Exception in ASGI
    application" with a 60-line CancelledError traceback (found by a review). Those become one
    line; any other error is logged as it was."""

    def __init__(self, server) -> None:
        self.server = server

    def filter(self, record) -> bool:
        import asyncio
        import logging

        if not getattr(self.server, "should_exit", False):
            return True
        msg = record.getMessage()
        if msg.startswith("Cancel ") and "timeout graceful shutdown exceeded" in msg:
            n = record.args[0] if isinstance(record.args, tuple) and record.args else "the"
            record.msg, record.args = "stopping: %s request(s) still open after %d s cut off", (n, GRACEFUL_SECONDS)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        exc = record.exc_info[1] if record.exc_info else None
        seen = 0
        while exc is not None and seen < 10:  # (the cancellation may be the cause of what was logged)
            if isinstance(exc, asyncio.CancelledError):
                return False
            exc = exc.__cause__ or exc.__context__
            seen += 1
        return True


class StudioServer:
    """The studio on ``host:port`` (port 0: any free port; read ``.port`` / ``.url`` after binding).

    On a loopback host only loopback Host headers are accepted (a defence against DNS rebinding).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        require("fastapi", "studio")
        uvicorn = require("uvicorn", "studio")
        from .app import create_app

        self.host = host
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as e:
            sock.close()
            raise FolaiError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host") from None
        # listening from now on: the URL printed before the server runs takes connections at once
        # (they wait in the backlog until it accepts them; before, a browser or a script that
        # opened it right away could be refused)
        sock.listen(128)
        self.sock = sock
        self.port = sock.getsockname()[1]
        if is_loopback(host):
            # the loopback names, and the address listened on itself (--host 127.0.0.2 had served
            # only 403s; found by a review)
            own = host.strip("[]")
            app_options.setdefault("allowed_hosts", tuple(dict.fromkeys((*LOOPBACK_NAMES, own, f"[{own}]"))))
        self.app = create_app(**app_options)
        # (a bounded graceful shutdown: a browser tab holding a video download or a stalled upload
        # had kept a hung-up or terminated studio, and its port and workspace, for as long as it
        # stayed open; found by a review)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_SECONDS)
        self.server = uvicorn.Server(config)
        self._quiet = _ShutdownQuiet(self.server)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        h = self.host if ":" not in self.host.strip("[]") else f"[{self.host.strip('[]')}]"
        return f"http://{h}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl+C, SIGTERM, SIGHUP); the workspace is removed however it ends.

        uvicorn shuts down gracefully on Ctrl+C and SIGTERM and then raises the signal again for
        the caller; SIGHUP (a closed terminal, a dropped ssh connection) it leaves alone, so the
        CLI's handler raised inside the event loop and uvicorn logged a 37-line CancelledError
        traceback before "hung up" (found by a review). SIGHUP now asks for the same graceful
        shutdown and is raised again once the server has stopped; one ignored (nohup) stays so."""
        hup = getattr(signal, "SIGHUP", None)
        hung_up: list[int] = []
        previous = None
        if hup is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(hup) is not signal.SIG_IGN:

                def on_hangup(signum: int, frame: Any) -> None:
                    hung_up.append(signum)
                    self.server.should_exit = True

                previous = signal.signal(hup, on_hangup)
                previous = signal.SIG_DFL if previous is None else previous  # (None: set from C)
        import logging

        uv_log = logging.getLogger("uvicorn.error")
        uv_log.addFilter(self._quiet)
        try:
            self.server.run(sockets=[self.sock])
        finally:
            uv_log.removeFilter(self._quiet)
            if previous is not None:
                signal.signal(hup, previous)
            self.app.state.cleanup()
            self.sock.close()
        if hung_up:
            signal.raise_signal(hup)

    def start(self, timeout: float = 20.0) -> "StudioServer":
        """Serve in a background thread; return once it accepts connections."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        ready = threading.Event()
        import time

        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.server.started:
                ready.set()
                break
            time.sleep(0.05)
        if not ready.is_set():
            raise FolaiError("the studio server did not start in time")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.app.state.cleanup()
        self.sock.close()

    def __enter__(self) -> "StudioServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
