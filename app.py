"""domainstats: which domains are hot right now. `create_app` builds the app; `main` serves it."""

from __future__ import annotations

import argparse
import logging
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
from storage import RedisStorage, StorageError, create_storage
from storage.base import Coordinator
from web import bp as web

logger = logging.getLogger("domainstats")

#: Defaults; each can be overridden by the environment as DOMAINSTATS_<NAME>, then by `config`.
DEFAULTS: dict[str, Any] = {
    "HOST": "127.0.0.1",
    "PORT": 5000,
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
    metrics = Metrics(storage.tracked_domains)
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


def _options() -> list[tuple[str, str, type, str]]:
    return [
        ("--host", "HOST", str, "address to listen on"),
        ("--port", "PORT", int, "port to listen on"),
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


def serve(app: Flask, host: str, port: int) -> None:
    """Serve `app` with gevent's WSGI server until SIGTERM or SIGINT."""
    # Background threads (ranking, checkpoints) hand the GIL back to the event loop after
    # 1 ms instead of 5 ms: that is the longest a request waits on them.
    sys.setswitchinterval(0.001)
    server = NoDelayWSGIServer(
        (host, port),
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


def main(argv: list[str] | None = None) -> None:
    """Run the server from the command line."""
    overrides = parse_args(argv)
    level = overrides.get("LOG_LEVEL") or os.environ.get(f"{ENV_PREFIX}_LOG_LEVEL", "info")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(overrides)
    except StorageError as exc:
        logger.error("cannot start: %s", exc)
        raise SystemExit(1) from None
    serve(app, app.config["HOST"], int(app.config["PORT"]))


if __name__ == "__main__":
    main()
