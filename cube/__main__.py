"""The command line.

python -m cube worker ...   a worker and its HTTP API, in one process, until Ctrl-C or SIGTERM
python -m cube doctor       what is wrong with this machine's Docker, and the fix
"""

import argparse
import copy
import logging
import os
import secrets
import signal
import socket
import sys

from cube.doctor import doctor


def _port(text: str) -> int:
    """--port: a whole number from 0 (any free port) to 65535; argparse says what else it got."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 0 (any free one) to 65535, not {text!r}"
        )
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cube", description="cube: a container orchestrator's worker"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("worker", help="run a worker and serve its API over HTTP")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    w.add_argument(
        "--port", type=_port, default=5555, help="port to listen on; 0 picks a free one (default 5555)"
    )
    w.add_argument(
        "--name", default=f"worker-{socket.gethostname()}", help="the worker's name (labels its containers)"
    )
    w.add_argument(
        "--db", default=None, help="SQLite file that keeps tasks across restarts (default: memory)"
    )
    w.add_argument("--parallel", type=int, default=1, help="requests handled at once (default 1)")
    w.add_argument(
        "--token",
        help="every request must carry 'Authorization: Bearer TOKEN'; 'auto' makes one and prints it "
        "(default: $CUBE_TOKEN, which ps does not show as it shows this; none, on loopback only)",
    )
    commands.add_parser("doctor", help="check this machine's Docker for cube, and say how to fix it")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        report = doctor()
        print(repr(report))
        return 0 if report.ok else 1
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    """python -m cube worker. The web stack is imported here only: the doctor needs none (0.4 s, not 1.3)."""
    import uvicorn

    from cube.api import create_app
    from cube.auth import MAX_HEADERS, listen, listen_check, token_check, url_of
    from cube.store import StoreInUse
    from cube.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    given = "--token" if args.token is not None else "CUBE_TOKEN"
    token = args.token if args.token is not None else os.getenv("CUBE_TOKEN")
    made = token == "auto"
    if made:  # hex: a token never starts with "-", which a command line would take for an option
        token = secrets.token_hex(24)
    if token is not None and not token.strip():
        print(f"cube worker: {given} is empty: give a token, or --token auto to make one", file=sys.stderr)
        return 2
    try:
        token_check(token, given)
        listen_check(args.host, token)
    except ValueError as e:
        print(f"cube worker: {e}", file=sys.stderr)
        return 2
    try:
        worker = Worker(args.name, db_path=args.db, parallel=args.parallel)
    except (StoreInUse, ValueError) as e:
        print(f"cube worker: {e}", file=sys.stderr)
        return 2
    try:
        listener = listen(args.host, args.port)
    except OSError as e:
        print(f"cube worker: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        worker.close()
        return 2
    print(f"cube worker {worker.name} listening on {url_of(listener)} (API docs: /docs)", flush=True)
    if made:  # printed once, here: the worker keeps it nowhere else
        print(f"token: {token} (send it as the header Authorization: Bearer {token})", flush=True)
    app = create_app(worker, token=token)
    logs = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # with the request log on stderr beside the
    logs["handlers"]["access"]["stream"] = "ext://sys.stderr"  # rest: stdout says where, and when stopped
    config = uvicorn.Config(
        app,
        lifespan="on",
        timeout_graceful_shutdown=2,
        log_config=logs,
        h11_max_incomplete_event_size=MAX_HEADERS,
    )
    server = uvicorn.Server(config)
    # uvicorn stops on SIGINT and SIGTERM, then raises the signal again for the handler that was there
    # before it; with these, that second time does nothing and the worker is closed below.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[listener])
    finally:  # from here a second signal ends the wait for what is under way (its intent is recorded)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        worker.stop(None)  # what is under way ends; the queue then stays as it is
        if not args.db and (left := len(worker.queue)):
            said = f"{left} queued request{' was' if left == 1 else 's were'} not carried out"
            said += ": gone with the worker"
            print(f"cube worker: {said} (its store is in memory; --db PATH keeps them)", file=sys.stderr)
        worker.close()
    print(f"cube worker {worker.name} stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
