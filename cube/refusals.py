"""What the worker's API says to a request it refuses: a 4xx, never a 500, with a JSON body
{"error": a sentence saying what is wrong, "where": the place in the request (a field, a header), or
null}. The book's handlers write a 400 and then carry on, into a nil dereference.

A route refuses by raising Problem. install(app) turns everything else the app refuses into the same
shape: what pydantic refuses (its messages as sentences that name the field), a body that is not JSON
or not sent as JSON, a path or a method the app does not have. LimitBody refuses a body that is too
large (413) before any route reads it; PlainPath a path with a control character in it (404).
"""

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

MAX_BODY = 64 * 1024  # bytes; a task event is a few hundred


class Problem(Exception):
    """A request the API refuses: an HTTP status, a sentence, and where in the request."""

    def __init__(self, status: int, error: str, where: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.where = status, error, where


def install(app: FastAPI) -> None:
    """Answer every request `app` refuses with a 4xx {"error", "where"}: a Problem a route raises,
    input pydantic refuses, a path or method the app does not have."""

    @app.exception_handler(Problem)
    async def problem(request: Request, e: Problem) -> JSONResponse:
        return JSONResponse({"error": e.error, "where": e.where}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        kind = request.headers.get("content-type", "")
        if request.method == "POST" and not _is_json(kind):
            error = f"the body must be JSON, sent with Content-Type: application/json (not {kind or 'none'})"
            return JSONResponse({"error": error, "where": "header.content-type"}, status_code=415)
        errors = [{"where": _where(err), "error": _sentence(err)} for err in e.errors()]
        status = 400 if any(err["type"] == "json_invalid" for err in e.errors()) else 422
        first = errors[0] if errors else {"where": None, "error": "the request is not valid"}
        return JSONResponse({**first, "errors": errors}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http(request: Request, e: HTTPException) -> JSONResponse:
        where, headers = f"{request.method} {request.url.path}", e.headers
        if e.status_code == 400:  # FastAPI could not parse the body at all (nested too deep, say)
            return JSONResponse({"error": "the body is not valid JSON", "where": "body"}, status_code=400)
        if e.status_code == 405:  # Starlette names only the first route's methods
            matching = [r for r in app.routes if r.matches(request.scope)[0].value]  # the path fits
            allowed = sorted({m for r in matching for m in getattr(r, "methods", None) or ()})
            allowed = allowed or ["GET", "HEAD"]  # a mount (the docs) names none, serves these
            headers = {"Allow": ", ".join(allowed)}
            error = f"{request.method} is not allowed on {request.url.path}; it takes {', '.join(allowed)}"
        elif e.status_code == 404:
            error = f"there is no {request.url.path} here; the endpoints are listed at /docs"
        else:
            error = str(e.detail)
        return JSONResponse({"error": error, "where": where}, status_code=e.status_code, headers=headers)


def _is_json(kind: str) -> bool:
    """Is this Content-Type one FastAPI reads as JSON: application/json or application/*+json?
    (Not text/json or application/jsonl: their body reaches the route as bytes, never an object.)"""
    media = kind.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _where(err: dict) -> str:
    if err["type"] == "json_invalid":  # its loc is ("body", the character where it went wrong)
        return "body"
    return ".".join(map(str, err["loc"]))


def _sentence(err: dict) -> str:
    """Pydantic's message for one error, as a sentence naming the field."""
    where = ".".join(str(p) for p in err["loc"][1:]) or "the body"
    if err["type"] == "extra_forbidden":
        return f"{where}: not a field a request may set (see /docs for the fields)"
    if err["type"] == "model_attributes_type" and len(err["loc"]) == 1:
        return 'the body must be a JSON object: {"state": "SCHEDULED", "task": {"image": "..."}}'
    if err["type"] == "missing":
        return f"{where}: missing"
    if err["type"] == "string_unicode":  # pydantic says "unable to parse raw data as a unicode string"
        return (
            f"{where}: a string or a key here holds half of a UTF-16 pair (an escape \\ud800 to \\udfff "
            "alone), which is not text: send the character itself, or both halves"
        )
    if err["type"] == "json_invalid":
        return (
            f"the body is not valid JSON: {err['ctx']['error']}"
            if "ctx" in err
            else "the body is not valid JSON"
        )
    return f"{where}: {err['msg']}"


class LimitBody:
    """Refuse a body over MAX_BODY bytes with 413, declared (Content-Length) or not (chunked).

    The body is read here first, so that no route ever sees part of one that is too large, or of one
    whose client left before sending it whole.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        body, more = b"", True
        while more and len(body) <= MAX_BODY and not (length.isdigit() and int(length) > MAX_BODY):
            message = await receive()
            if message["type"] == "http.disconnect":  # the client left mid-body: there is no request
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if len(body) > MAX_BODY or (length.isdigit() and int(length) > MAX_BODY):
            error = f'{{"error": "the body is larger than {MAX_BODY} bytes", "where": "body"}}'.encode()
            # close: the rest of the body is never read, so no request after it here could be either
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            return await send({"type": "http.response.body", "body": error})
        whole = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay():  # the body once, then what the client does next (a disconnect)
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)


class PlainPath:
    """Refuse (404) a path with a control character in it, sent as %0a say: no route has one, but
    Starlette's routes end in `$`, which matches before a final newline, so /tasks%0a would be /tasks."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not any(ord(c) < 32 or ord(c) == 127 for c in scope["path"]):
            return await self.app(scope, receive, send)
        where = f"{scope['method']} {quote(scope['path'])}"  # as sent: a newline shown, not printed
        error = f"there is no {quote(scope['path'])} here (a path holds no control character); see /docs"
        await JSONResponse({"error": error, "where": where}, status_code=404)(scope, receive, send)
