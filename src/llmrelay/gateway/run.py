"""The gateway's server process: uvicorn (httptools, uvloop) serving ``factory.create_app``.

``llmrelay serve`` checks the config, the key and the port, then, for one worker,
replaces itself with ``python -m llmrelay.gateway.run`` (same process id), so the
serving process holds neither the CLI's libraries nor the objects it made while
checking: about 5 MB less resident memory. With more workers, uvicorn's supervisor
stays in the CLI's process and its workers import only what serving needs.

    python -m llmrelay.gateway.run --host 127.0.0.1 --port 4000 [--workers N] [--debug]

The config comes from ``LLMRELAY_CONFIG`` (and the environment), as in each worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def serve(host: str, port: int, workers: int = 1, debug: bool = False) -> None:
    """Serve until stopped (Ctrl-C, SIGTERM): uvicorn with the gateway's protocol."""
    import uvicorn

    uvicorn.run(
        "llmrelay.gateway.factory:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="llmrelay.gateway.server:GuardedHttpToolsProtocol",  # httptools, with client deadlines
        ws="none",  # no WebSocket route: its libraries stay unloaded
        proxy_headers=False,  # client addresses are used nowhere: no middleware rewriting them per request
        lifespan="on",
        access_log=False,
        log_level="debug" if debug else "warning",
        timeout_graceful_shutdown=30,
    )


def become_server(host: str, port: int, debug: bool) -> None:
    """Replace this process by one that only serves (one worker; POSIX). Elsewhere, or if
    the exec fails, serve from this process."""
    command = [sys.executable, "-m", "llmrelay.gateway.run", "--host", host, "--port", str(port)]
    if debug:
        command.append("--debug")
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execv(sys.executable, command)
        except OSError:
            pass
    serve(host, port, 1, debug)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmrelay.gateway.run", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if args.debug:  # as the CLI's --debug: the library's debug lines too
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
    serve(args.host, args.port, args.workers, args.debug)


if __name__ == "__main__":
    main()
