#!/usr/bin/env python3
"""moto's server mode with requests handled one at a time.

    moto_server.py HOST PORT

Same as `moto_server -H HOST -p PORT`, except:

- the application handles one request at a time. moto checks S3 preconditions (If-None-Match:
  * on PutObject and CompleteMultipartUpload, If-Match) and then writes, with other request
  threads free to run in between, so two racing create-only writes can both succeed. Real S3
  makes them atomic, and the tests race such writes on purpose. Serialising requests restores
  that. The server stays threaded, so an idle keep-alive connection does not hold up the others.
- ListMultipartUploads tells when each upload was initiated, as S3 does (moto 5.2 answers the
  same constant date for every upload), so that the tests of aborting interrupted uploads by
  their initiation time mean something on moto too.
"""

import datetime
import os
import re
import signal
import sys
import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3 import models as s3_models
from werkzeug.serving import run_simple

# moto's constant Initiated, and when each upload id was really created.
MOTO_INITIATED = b"2010-11-10T20:48:33.000Z"
INITIATED: dict[str, bytes] = {}
UPLOAD = re.compile(rb"<Upload>.*?</Upload>", re.S)
UPLOAD_ID = re.compile(rb"<UploadId>([^<]*)</UploadId>")


def record_initiation() -> None:
    """Wraps FakeMultipart's constructor to note when each upload id was created."""
    original = s3_models.FakeMultipart.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        now = datetime.datetime.now(datetime.timezone.utc)
        # Same length as moto's constant, so that Content-Length stays right.
        INITIATED[self.id] = now.strftime("%Y-%m-%dT%H:%M:%S").encode() + b".%03dZ" % (now.microsecond // 1000)

    s3_models.FakeMultipart.__init__ = init  # type: ignore[method-assign]


def real_initiation_times(body: bytes) -> bytes:
    """Puts each listed upload's creation time in place of moto's constant."""
    if b"<ListMultipartUploadsResult" not in body:
        return body

    def fix(upload: "re.Match[bytes]") -> bytes:
        text = upload.group(0)
        found = UPLOAD_ID.search(text)
        when = INITIATED.get(found.group(1).decode()) if found else None
        return text.replace(MOTO_INITIATED, when) if when else text

    return UPLOAD.sub(fix, body)


class OneAtATime:
    """A WSGI wrapper that runs the wrapped application (and drains its response) under a lock."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [real_initiation_times(b"".join(result))]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    record_initiation()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]
    run_simple(host, port, OneAtATime(app), threaded=True)


if __name__ == "__main__":
    main()
