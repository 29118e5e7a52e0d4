"""``llmrelay serve``: the gateway on uvicorn (httptools, uvloop)."""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import tempfile
from typing import TYPE_CHECKING, Annotated

import typer

from .._install import install_hint
from . import app
from .common import fail, state, stderr

if TYPE_CHECKING:
    from ..config import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(short_help="Run the OpenAI-compatible gateway.")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 4000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.", min=1, max=64)] = 1,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="YAML config file (as the global --config).")
    ] = None,
    insecure_open: Annotated[
        bool,
        typer.Option(
            "--insecure-open", help="With no master key, serve without any key (loopback only; for local use)."
        ),
    ] = False,
) -> None:
    """Serve the configured models over the OpenAI API (chat completions, embeddings,
    models) until Ctrl-C. It needs a master key (auth.master_key or
    LLMRELAY_MASTER_KEY), or --insecure-open to serve this machine without keys."""
    try:
        import uvicorn  # noqa: F401  (checked here; gateway/run.py serves with it)
    except ImportError:
        fail(f"the gateway needs uvicorn: {install_hint('gateway')}")
    from ..errors import LLMError
    from ..gateway.factory import INSECURE_OPEN_ENV, master_key, open_access, server_limits
    from ..gateway.gc_tuning import threshold_from_env

    st = state(ctx)
    if config:
        st.config = config
    if st.config:
        os.environ["LLMRELAY_CONFIG"] = os.path.abspath(st.config)  # each worker reads it
    if insecure_open:
        os.environ[INSECURE_OPEN_ENV] = "1"  # each worker reads it
    try:
        threshold_from_env()  # a bad value stops here, not in each worker
        client = st.client()
        key, opened = master_key(client.aio), open_access(client.aio)
        shared = client.settings.state_url is not None
        if key is None and not opened:
            fail(
                "no master key: set auth.master_key in the config (or LLMRELAY_MASTER_KEY), or pass --insecure-open "
                "to serve this machine without keys"
            )
        if key is None and not is_loopback(host):
            fail(f"refusing to serve {host} without a master key: set auth.master_key or LLMRELAY_MASTER_KEY")
        if workers > 1 and not shared:
            fail(
                f"--workers {workers} needs shared state: with state in memory each worker would keep its own rate "
                f"limits, budgets and breakers ({workers} times every limit). Set state: {{backend: redis, url: ...}} "
                "in the config, or run one worker"
            )
        _can_listen(host, port)  # before the store is made and the banner printed
        store = _open_store(client.settings)  # migrated once here, before any worker starts
        st.close()
    except LLMError as exc:
        fail(str(exc))
    if key is None:
        stderr().print(f"[yellow]open mode[/]: no master key, so anyone on this machine can use http://{host}:{port}")
    stderr().print(f"llmrelay gateway on http://{host}:{port}/v1 ({workers} worker{'s' if workers > 1 else ''})")
    stderr().print(f"store: {store}", soft_wrap=True, highlight=False)
    shared_metrics = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shared_metrics = tempfile.mkdtemp(prefix="llmrelay-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared_metrics  # the workers add up their metrics there
    _allow_open_files(server_limits(client.aio).max_connections + 256)
    try:
        _run(host, port, workers, st.debug)
    finally:
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)


def _can_listen(host: str, port: int) -> None:
    """Exit 1 with one line when ``host:port`` cannot be bound (uvicorn would say so
    only after the banner, and exit 3)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(f"{where} is already in use: stop what is using it or pass --port")
            fail(f"cannot listen on {where}: {exc.strerror or exc}")


def _allow_open_files(wanted: int) -> None:
    """Raise the process's open-file limit toward ``wanted`` (up to its hard limit), so the
    connection cap (``server.max_connections``) is reached before "too many open files"."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            stderr().print(f"[yellow]warning[/]: open files are limited to {soft}; raise ulimit -n to {wanted}")


def _run(host: str, port: int, workers: int, debug: bool) -> None:
    from ..gateway.run import become_server, serve

    if workers == 1:
        become_server(host, port, debug)  # a process that only serves (gateway/run.py)
    else:
        serve(host, port, workers, debug)


def _open_store(settings: Settings) -> str:
    """Open (and migrate) the store; its URL with any password hidden, for the banner."""
    try:
        from ..store import Store, StoreError, default_store_url
    except ImportError:
        fail(f"the gateway needs SQLAlchemy: {install_hint('gateway')}")
    try:
        store = Store.open(default_store_url(settings))
    except StoreError as exc:
        fail(f"the store cannot be opened: {exc}")
    shown = str(store.url)
    store.close()
    return shown
