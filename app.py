"""domainstats: which domains are hot right now. `create_app` builds the app; `main` serves it."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
from flask import Flask
from gevent.pywsgi import WSGIServer
from gevent.threadpool import ThreadPool

from aggregation import Aggregator
from alerts import AlertEngine, Notifier
from alerts.stores import AlertStore, RedisAlertStore, SqliteAlertStore
from api import init_app
from api.fastpath import Accounting, FastPath
from api.services import Services
from core.metrics import Metrics
from core.timeutil import parse_duration
from sources.scraper import Scraper, load_targets
from storage import RedisStorage, Storage, StorageError, create_storage
from storage.base import Coordinator
from web import bp as web

logger = logging.getLogger("domainstats")

#: Defaults; each can be overridden by the environment as DOMAINSTATS_<NAME>, then by `config`.
DEFAULTS: dict[str, Any] = {
    "HOST": "127.0.0.1",
    "PORT": 5000,
    "WORKERS": 1,
    "DATA_DIR": "./data",
    "STORAGE_URL": "sqlite://",
    "FSYNC": "normal",
    "RETENTION": "25h",
    "HISTORY": "90d",
    "FUTURE": 300,
    "LOG_LEVEL": "info",
    "SMTP_URL": None,
    "SMTP_FROM": "domainstats@localhost",
    "PUBLIC_URL": "http://127.0.0.1:5000",
    "SCRAPE": "",
    "SCRAPE_CONFIG": None,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "REBUILD_INTERVAL": 1.0,
    "SLOW_REBUILD_INTERVAL": 5.0,
    "TOP_K": 1000,
    "START_BACKGROUND": True,
    "CLOCK": time.time,
    "API_TITLE": "domainstats",
    "API_VERSION": "1.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "/docs/static/",
}
ENV_PREFIX = "DOMAINSTATS"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then DOMAINSTATS_* environment variables, then `config`."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env(ENV_PREFIX)
    app.config.from_mapping(config or {})
    retention = parse_duration(app.config["RETENTION"])
    history = max(retention, parse_duration(app.config["HISTORY"]))
    clock = app.config["CLOCK"]

    url = app.config["STORAGE_URL"]
    storage = create_storage(
        url,
        retention=retention,
        clock=clock,
        data_dir=app.config["DATA_DIR"],
        fsync=app.config["FSYNC"],
        history=history,
    )
    metrics = Metrics(lambda: _tracked_domains(storage))
    scheme = url.partition("://")[0]
    if isinstance(storage, RedisStorage):
        store: AlertStore = RedisAlertStore(storage)
    else:
        durable = scheme == "sqlite"
        path = Path(app.config["DATA_DIR"]) / "alerts.sqlite3" if durable else ":memory:"
        store = SqliteAlertStore(str(path))
    alerts = AlertEngine(
        storage,
        store,
        clock=clock,
        metrics=metrics,
        dashboard_url=app.config["PUBLIC_URL"],
    )
    threads = ThreadPool(2)
    coordinator = storage if isinstance(storage, Coordinator) else None
    aggregator = Aggregator(
        storage,
        clock=clock,
        interval=float(app.config["REBUILD_INTERVAL"]),
        slow_interval=float(app.config["SLOW_REBUILD_INTERVAL"]),
        top_k=int(app.config["TOP_K"]),
        metrics=metrics,
        # Ranking a million domains takes milliseconds that requests should not wait for.
        offload=threads.apply if app.config["START_BACKGROUND"] else None,
        tasks=(alerts.evaluate,),
        coordinator=coordinator,
    )
    notifier = Notifier(
        alerts,
        smtp_url=app.config["SMTP_URL"],
        sender=app.config["SMTP_FROM"],
        offload=threads.apply,
        # Many processes on one Redis: only the one leading the tick sends.
        gate=None if coordinator is None else lambda: aggregator.leader,
    )
    scrape = app.config["SCRAPE"]
    scraper = Scraper(
        storage,
        load_targets(
            scrape.split(",") if isinstance(scrape, str) else list(scrape),
            app.config["SCRAPE_CONFIG"],
        ),
        clock=clock,
        offload=threads.apply,
        metrics=metrics,
        # Many processes on one Redis: only the one leading the tick scrapes.
        gate=None if coordinator is None else lambda: aggregator.leader,
    )
    app.extensions["domainstats"] = services = Services(
        storage=storage,
        storage_name=scheme,
        aggregator=aggregator,
        alerts=alerts,
        notifier=notifier,
        scraper=scraper,
        metrics=metrics,
        clock=clock,
        started_at=clock(),
        retention=retention,
        history=history,
        future=int(app.config["FUTURE"]),
    )
    init_app(app)
    app.register_blueprint(web)
    app.wsgi_app = Accounting(FastPath(app.wsgi_app, services, app.config), services)
    if app.config["START_BACKGROUND"]:
        aggregator.start()
        notifier.start()
        scraper.start()
    return app


def _tracked_domains(storage: Storage) -> float:
    """The gauge's value; NaN while the storage is unreachable, so /metrics still answers."""
    try:
        return storage.tracked_domains()
    except StorageError:
        return math.nan


def _options() -> list[tuple[str, str, type, str]]:
    return [
        ("--host", "HOST", str, "address to listen on"),
        ("--port", "PORT", int, "port to listen on"),
        ("--workers", "WORKERS", int, "server processes (more than 1 needs --storage redis://)"),
        ("--data-dir", "DATA_DIR", str, "directory of the embedded durable store"),
        ("--storage", "STORAGE_URL", str, "sqlite:// (durable, in --data-dir) or memory://"),
        ("--fsync", "FSYNC", str, "normal (survives kill -9) or always (also power loss)"),
        ("--retention", "RETENTION", str, "how long per-minute buckets are kept, e.g. 25h"),
        ("--history", "HISTORY", str, "how long hourly roll-ups are kept, e.g. 90d"),
        ("--max-body", "MAX_CONTENT_LENGTH", int, "largest accepted request body, in bytes"),
        ("--log-level", "LOG_LEVEL", str, "debug, info, warning or error"),
        ("--smtp-url", "SMTP_URL", str, "smtp://user:pass@host:port (?starttls), for e-mail"),
        ("--smtp-from", "SMTP_FROM", str, "sender address of alert e-mails"),
        ("--public-url", "PUBLIC_URL", str, "this server's URL, for links in notifications"),
        ("--scrape", "SCRAPE", str, "a Prometheus endpoint to scrape (repeatable)"),
        ("--scrape-config", "SCRAPE_CONFIG", str, "a TOML file of [[target]] url/interval/key"),
    ]


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """Read command-line options into config keys; unset options leave the environment's."""
    parser = argparse.ArgumentParser(
        prog="start.sh",
        description="Serve domainstats with gevent.",
        epilog="Each option can also be set in the environment as "
        + ", ".join(f"{ENV_PREFIX}_{key}" for _, key, _, _ in _options())
        + "; options win.",
    )
    for flag, key, kind, text in _options():
        default = os.environ.get(f"{ENV_PREFIX}_{key}", DEFAULTS[key])
        parser.add_argument(
            flag,
            dest=key,
            type=kind,
            action="append" if key == "SCRAPE" else "store",
            help=f"{text} (default {default or 'none'}; ${ENV_PREFIX}_{key})",
        )
    args = vars(parser.parse_args(argv))
    return {key: value for key, value in args.items() if value is not None}


class NoDelayWSGIServer(WSGIServer):
    """gevent's WSGI server with TCP_NODELAY on every accepted socket."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        # pywsgi writes headers and body separately: without TCP_NODELAY each
        # keep-alive response waits ~40 ms on delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def listen(host: str, port: int, shared: bool = False) -> socket.socket:
    """Return a listening TCP socket; `shared` lets every worker bind the same port, and
    the kernel spreads connections over them (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve(app: Flask, host: str, port: int, shared: bool = False) -> None:
    """Serve `app` with gevent's WSGI server until SIGTERM or SIGINT."""
    # Background threads (ranking, checkpoints) hand the GIL back to the event loop after
    # 1 ms instead of 5 ms: that is the longest a request waits on them.
    sys.setswitchinterval(0.001)
    server = NoDelayWSGIServer(
        listen(host, port, shared),
        app,
        log=logging.getLogger("domainstats.access"),
        error_log=logging.getLogger("domainstats.server"),
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.stop, 5)
    logger.info("serving on http://%s:%d", host, server.server_port or port)
    server.serve_forever()
    app.extensions["domainstats"].close()
    logger.info("stopped")


def _worker(overrides: dict[str, Any]) -> int:
    """Fork a worker process that builds its own app and serves; return its pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            app = create_app(overrides)
            gevent.spawn(_stop_when_orphaned, os.getppid())
            serve(app, app.config["HOST"], int(app.config["PORT"]), shared=True)
        except StorageError as exc:
            logger.error("worker cannot start: %s", exc)
            code = 1
        except BaseException:
            logger.exception("worker failed")
            code = 1
        os._exit(code)
    return pid


def _stop_when_orphaned(parent: int) -> None:
    """Stop this worker if its parent dies (kill -9 of the parent must not leave workers)."""
    while os.getppid() == parent:
        gevent.sleep(1)
    logger.error("the parent process %d is gone: stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def prefork(overrides: dict[str, Any], workers: int) -> None:
    """Run `workers` server processes on one port; replace any that dies; stop on a signal."""
    children = {_worker(overrides): time.monotonic() for _ in range(workers)}
    logger.info("started %d workers: %s", workers, " ".join(map(str, children)))
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while children:
        pid, status = os.wait()
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        logger.error("worker %d exited (status %d)", pid, os.waitstatus_to_exitcode(status))
        if time.monotonic() - started < 5:
            # Dying at start-up (Redis unreachable, say) would only repeat: stop them all.
            failed = True
            stop(signal.SIGTERM, None)
        else:
            children[_worker(overrides)] = time.monotonic()
    raise SystemExit(1 if failed else 0)


def main(argv: list[str] | None = None) -> None:
    """Run the server from the command line."""
    overrides = parse_args(argv)
    level = overrides.get("LOG_LEVEL") or os.environ.get(f"{ENV_PREFIX}_LOG_LEVEL", "info")
    workers = int(overrides.get("WORKERS") or os.environ.get(f"{ENV_PREFIX}_WORKERS", 1))
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    url = overrides.get("STORAGE_URL") or os.environ.get(
        f"{ENV_PREFIX}_STORAGE_URL", DEFAULTS["STORAGE_URL"]
    )
    if workers != 1 and url.partition("://")[0].partition("+")[0] not in ("redis", "rediss"):
        logger.error(
            "cannot start %d workers on %s: the embedded store belongs to one process "
            "(memory:// would give each worker its own numbers). "
            "Use --storage redis://HOST:PORT/DB, or one worker.",
            workers,
            url,
        )
        raise SystemExit(2)
    try:
        app = create_app(overrides if workers == 1 else {**overrides, "START_BACKGROUND": False})
    except StorageError as exc:
        logger.error("cannot start: %s", exc)
        raise SystemExit(1) from None
    if workers == 1:
        serve(app, app.config["HOST"], int(app.config["PORT"]))
        return
    # The app built above checked the configuration and Redis; each worker builds its own.
    app.extensions["domainstats"].close()
    prefork(overrides, workers)


if __name__ == "__main__":
    main()
