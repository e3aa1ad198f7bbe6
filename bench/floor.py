"""The HTTP floor: a bare gevent WSGI app on the same server class as domainstats, no Flask.

GET answers a fixed small JSON body; POST reads the body and parses it with orjson.
Usage: python -m gevent.monkey bench/floor.py PORT
"""

from __future__ import annotations

import sys

import orjson

from app import NoDelayWSGIServer

BODY = orjson.dumps({"status": "ok", "message": "OK", "accepted": 100})
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    """Answer every request with BODY, parsing POST bodies first."""
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        orjson.loads(environ["wsgi.input"].read(length))
    start_response("200 OK", HEADERS)
    return [BODY]


if __name__ == "__main__":
    NoDelayWSGIServer(("127.0.0.1", int(sys.argv[1])), application, log=None).serve_forever()
