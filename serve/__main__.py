"""``python -m serve`` starts the service; ``python -m serve keys add|revoke|list`` manages API keys.

    python -m serve keys add clinic-app      # prints the new key ONCE; only its hash is stored
    python -m serve --host 127.0.0.1 --port 8000
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        from actionpose.errors import ActionposeError
        from serve.settings import Settings
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        from serve.storage import add_key, list_keys, open_db, revoke_key

        p = argparse.ArgumentParser(prog="python -m serve keys")
        p.add_argument("action", choices=["add", "revoke", "list"])
        p.add_argument("name", nargs="?")
        a = p.parse_args(argv[1:])
        try:
            engine = open_db(Settings.from_env().db_url)
        except ActionposeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if a.action == "list":
            keys = list_keys(engine)
            for k in keys:
                print(f"{k['name']}\t{'revoked' if k['revoked_at'] else 'active'}")
            # which database was read: an empty list from another folder's database looked like "no keys"
            print(f"{len(keys)} key(s) in {_shown(engine)}", file=sys.stderr)
            return 0
        if not a.name:
            print("error: give a key name", file=sys.stderr)
            return 2
        if a.action == "add":
            try:
                print(add_key(engine, a.name))
            except ActionposeError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            except IntegrityError:
                print(f"error: key name {a.name!r} already exists", file=sys.stderr)
                return 2
            except SQLAlchemyError as e:  # e.g. a locked database: it was reported as "already exists"
                reason = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
                print(f"error: key {a.name!r} not added to {_shown(engine)}: {reason}", file=sys.stderr)
                return 2
            # the default database is relative to the working folder: say which one holds the key (a key added
            # from another folder went to another database and got a bare 401)
            print(f"key {a.name!r} added to {_shown(engine)}; the service must use this database", file=sys.stderr)
            return 0
        if not revoke_key(engine, a.name):
            print(f"error: no active key named {a.name!r}", file=sys.stderr)
            return 2
        print(f"revoked {a.name}")
        return 0
    p = argparse.ArgumentParser(prog="python -m serve", description="actionpose fall-detection service",
                                epilog="API keys: python -m serve keys add NAME | revoke NAME | list (the database is "
                                       "ACTIONPOSE_DB_URL's, as for the service; docs/fall.md lists every setting)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--workers", type=int, default=1, help="worker processes, one per core (default 1)")
    p.add_argument("--log-level", default="info", help="debug, info, warning, error (default info)")
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   help="no per-request access log line (less work per request; errors are still logged)")
    a = p.parse_args(argv)
    from actionpose.errors import ActionposeError
    from actionpose.inference.fall import FallDetector
    from serve.settings import Settings

    from serve.storage import open_db

    try:  # settings, model and database are checked here, so a typo is one line, not a worker's traceback
        settings = Settings.from_env()
        engine = open_db(settings.db_url)
        from serve.storage import active_key_hashes

        active = len(active_key_hashes(engine))
        # a mistyped ACTIONPOSE_DB_URL started a service that was "ready" and answered 401 to every key
        db_line = (f"database {_shown(engine)}: {active} active API key(s)"  # said once the port is ours
                   + ("" if active else "; every data request gets 401 until one is added (python -m serve keys add NAME)"))
        if settings.webhook_url:  # said: nothing else showed that alerts are pushed anywhere
            from serve.webhook import shown_url

            db_line += f"; events pushed to the webhook at {shown_url(settings.webhook_url)}"
        engine.dispose()
    except ActionposeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:  # loaded once here too (~0.3 s): a model that is not a fall model failed in each worker with a traceback
        FallDetector.from_pretrained(settings.model, threads=1)
    except ActionposeError as e:
        print(f"error: ACTIONPOSE_FALL_MODEL={settings.model}: {str(e).removeprefix(settings.model + ': ')}",
              file=sys.stderr)
        return 2
    if a.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    if not 0 < a.port < 65536:
        print(f"error: --port {a.port}: must be 1..65535", file=sys.stderr)
        return 2
    import uvicorn

    fast = {}  # uvloop + httptools when installed (the `serve` extra): C event loop and HTTP parser
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        fast = {"loop": "uvloop", "http": "httptools"}
    except ImportError:
        pass
    # no "server: uvicorn" header: it tells a scanner which software (and so which advisories) to try
    options = dict(log_level=a.log_level, access_log=a.access_log, timeout_keep_alive=5, limit_concurrency=512,
                   backlog=256, server_header=False, **fast)
    if a.workers > 1:
        from serve import workers

        if workers.available():  # one SO_REUSEPORT socket per worker: the kernel spreads connections evenly
            return workers.run(a.host, a.port, a.workers, options, started=db_line)
    try:  # a taken port was six log lines and exit 3, after the model had loaded
        import socket

        with socket.create_server((a.host, a.port)):
            pass
    except OSError as e:
        print(f"error: cannot listen on {a.host}:{a.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(db_line, file=sys.stderr)
    uvicorn.run("serve.app:app", host=a.host, port=a.port, workers=a.workers, **options)
    return 0


def _shown(engine) -> str:  # noqa: ANN001
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        from pathlib import Path

        return f"sqlite:///{Path(url.database).resolve()}"
    return url.render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
