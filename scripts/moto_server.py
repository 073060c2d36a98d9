#!/usr/bin/env python3
"""moto's server mode with requests handled one at a time.

    moto_server.py HOST PORT

Same as `moto_server -H HOST -p PORT`, except that the application handles one request at a
time. moto checks S3 preconditions (If-None-Match: * on PutObject and
CompleteMultipartUpload, If-Match) and then writes, with other request threads free to run
in between, so two racing create-only writes can both succeed. Real S3 makes them atomic,
and the tests race such writes on purpose. Serialising requests restores that. The server
stays threaded, so an idle keep-alive connection does not hold up the others.
"""

import os
import signal
import sys
import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class OneAtATime:
    """A WSGI wrapper that runs the wrapped application (and drains its response) under a lock."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]
    run_simple(host, port, OneAtATime(app), threaded=True)


if __name__ == "__main__":
    main()
