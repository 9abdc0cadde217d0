"""`/console`: a small web page for the people on call — sources and their state, the inbox
backlog, stores, breakers and workers (the status document of `apex-platform status`),
recent records with a link to their trace, and dead letters with replay and discard.

Sign-in is the admin token (`APEX_ADMIN_TOKEN`) typed once into a form; the answer is a
session cookie (HttpOnly, SameSite=Strict, Path=/console, Secure over HTTPS) that holds no
secret: an expiry and a random nonce signed with a key derived from the admin token's
digest, so every API replica with the same token accepts it and rotating the token ends
every session. Every state-changing request must also carry `X-CSRF-Token`, an HMAC of the
session's nonce that only the page served to that session knows (a synchronizer token bound
to the session, on top of SameSite=Strict); without it the answer is 403. The page is plain
HTML, CSS and JavaScript served from this package (no CDN), refreshed from `/console/state`
every few seconds; data is written with `textContent`, never as HTML, and the
Content-Security-Policy allows only this origin's script and style.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from importlib import resources
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter, QueryParameter

from apex_platform import operations, status
from apex_platform.api.deps import RuntimeDep
from apex_platform.errors import ApexError
from apex_platform.settings import AdminSettings, digest, load

log = logging.getLogger(__name__)

COOKIE = "apex_console"
CSRF_HEADER = "x-csrf-token"
#: a wall display stays signed in for this long
SESSION_SECONDS = 12 * 3600
REFRESH_SECONDS = 5
RECENT_RECORDS = 20
LETTERS_SHOWN = 50

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # trace links carry record ids: never to another site (and "no-referrer" would make
    # the browser send `Origin: null` with the sign-in form)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
LetterId = Annotated[int, PathParameter(ge=1, le=2**53)]


def _asset(name: str) -> str:
    return resources.files("apex_platform.api").joinpath("console", name).read_text(encoding="utf-8")


# -- sessions and CSRF tokens ---------------------------------------------------------------


def _keys() -> list[bytes]:
    """One signing key per configured admin token (several during a rotation)."""
    return [hmac.new(d, b"apex-console-session", hashlib.sha256).digest() for d in load(AdminSettings).digests()]


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def new_session(now: float | None = None) -> str:
    """A session cookie value: `expiry.nonce.mac` (signed with the first token's key)."""
    expiry = int((now or time.time()) + SESSION_SECONDS)
    nonce = secrets.token_urlsafe(18)
    return f"{expiry}.{nonce}.{_mac(_keys()[0], f'session:{expiry}:{nonce}')}"


def session_key(value: str | None, now: float | None = None) -> tuple[bytes, str] | None:
    """(key, nonce) of a valid, unexpired session cookie; None otherwise. Constant time
    over every configured key."""
    if not value or value.count(".") != 2:
        return None
    expiry, nonce, mac = value.split(".")
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        return None
    found = None
    for key in _keys():
        if hmac.compare_digest(_mac(key, f"session:{expiry}:{nonce}"), mac):
            found = (key, nonce)
    return found


def csrf_token(key: bytes, nonce: str) -> str:
    return _mac(key, f"csrf:{nonce}")


def _session(request: Request[Any, Any, Any]) -> tuple[bytes, str] | None:
    return session_key(request.cookies.get(COOKIE))


def _csrf_ok(request: Request[Any, Any, Any], session: tuple[bytes, str]) -> bool:
    given = request.headers.get(CSRF_HEADER) or ""
    return bool(given) and hmac.compare_digest(given, csrf_token(*session))


def _token_matches(token: str) -> bool:
    given = digest(token.strip()) if token.strip() else b""
    ok = False
    for expected in load(AdminSettings).digests():
        ok |= bool(given) and hmac.compare_digest(given, expected)
    return ok


def _page(body: str, status_code: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        body, status_code=status_code, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS, cookies=cookies
    )


def _login_page(message: str = "", status_code: int = 200) -> Response[str]:
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return _page(_asset("login.html").replace("{{message}}", note), status_code)


def _json(doc: Any, status_code: int = 200) -> Response[Any]:
    return Response(doc, status_code=status_code, headers=SECURITY_HEADERS)


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    """A browser's Origin header, when it sends one, must be this server's own."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


# -- the routes -----------------------------------------------------------------------------


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False

    @get("/", name="console")
    async def index(self, request: Request[Any, Any, Any]) -> Response[str]:
        """The console, or the sign-in form."""
        if not load(AdminSettings).digests():
            return _login_page("The console is disabled: set APEX_ADMIN_TOKEN.", 403)
        session = _session(request)
        if session is None:
            return _login_page()
        page = _asset("index.html").replace("{{csrf}}", csrf_token(*session))
        return _page(page.replace("{{refresh}}", str(REFRESH_SECONDS)))

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        """Check the admin token; a session cookie and back to the console."""
        if not load(AdminSettings).digests():
            return _login_page("The console is disabled: set APEX_ADMIN_TOKEN.", 403)
        if not _same_origin(request):
            return _login_page("Sign in from the console's own page.", 403)
        if not _token_matches(str(data.get("token", ""))):
            log.warning("console: a sign-in with a wrong admin token")
            return _login_page("That is not an admin token of this deployment.", 401)
        cookie = Cookie(
            key=COOKIE,
            value=new_session(),
            path="/console",
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return Response(
            "",
            status_code=303,
            media_type="text/plain",
            headers={"Location": "/console", **SECURITY_HEADERS},
            cookies=[cookie],
        )

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """End the session (needs the CSRF token, like every change)."""
        session = _session(request)
        if session is None:
            return _json({"error": "not signed in"}, 401)
        if not _csrf_ok(request, session):
            return _json({"error": "missing or wrong CSRF token"}, 403)
        gone = Cookie(key=COOKIE, value="", path="/console", max_age=0, httponly=True, samesite="strict")
        return Response(
            "",
            status_code=303,
            media_type="text/plain",
            headers={"Location": "/console", **SECURITY_HEADERS},
            cookies=[gone],
        )

    @get("/state")
    async def state(self, request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[Any]:
        """What the page shows: the status document, open dead letters, recent records."""
        if _session(request) is None:
            return _json({"error": "not signed in"}, 401)
        doc: dict[str, Any] = {"status": await status.collect(runtime)}
        try:
            doc["dead_letters"] = await operations.dlq_list(runtime, "open", LETTERS_SHOWN)
        except Exception as exc:  # noqa: BLE001 - shown on the page
            doc["dead_letters"] = []
            doc["dead_letters_error"] = f"{type(exc).__name__}: {exc}"[:300]
        try:
            doc["recent"] = await runtime.inbox.recent_lineage(RECENT_RECORDS)
        except Exception as exc:  # noqa: BLE001 - shown on the page
            doc["recent"] = []
            doc["recent_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return _json(doc)

    @post("/dead-letters/{letter_id:int}/{action:str}", status_code=200)
    async def letter(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, letter_id: LetterId, action: str
    ) -> Response[Any]:
        """Replay or discard one dead letter (session and CSRF token)."""
        session = _session(request)
        if session is None:
            return _json({"error": "not signed in"}, 401)
        if not _csrf_ok(request, session):
            return _json({"error": "missing or wrong CSRF token"}, 403)
        jobs = {"replay": operations.dlq_replay, "discard": operations.dlq_discard}
        if action not in jobs:
            return _json({"error": f"unknown action {action!r}: replay or discard"}, 404)
        try:
            result = await jobs[action](runtime, letter_id)
        except ApexError as exc:
            return _json({"error": str(exc)}, 404 if str(exc).startswith("no dead letter") else 409)
        log.info("console: dead letter %s %s", letter_id, action)
        return _json(result)

    @get("/trace")
    async def trace(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        source: Annotated[str, QueryParameter(max_length=64)],
        record_id: Annotated[str, QueryParameter(name="id", max_length=512)],
    ) -> Response[str]:
        """One record in every store, with its lineage (what `apex-platform trace` shows)."""
        if _session(request) is None:
            return _login_page()
        client = await runtime.connect(lazy=True)
        doc = await operations.trace(runtime, client, source, record_id)
        rows = []
        for name, st in doc["stores"].items():
            note = st.get("error") or ("tombstone" if st.get("deleted") else st.get("kind") or "")
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td>{'yes' if st['present'] else 'no'}</td>"
                f"<td>{html.escape(str(st.get('version') or '-'))}</td><td>{html.escape(note)}</td></tr>"
            )
        page = (
            _asset("trace.html")
            .replace("{{title}}", html.escape(f"{source} / {record_id}"))
            .replace("{{stores}}", "".join(rows))
            .replace("{{document}}", html.escape(json.dumps(doc, indent=2, default=str)))
        )
        return _page(page)

    @get("/static/{name:str}")
    async def asset(self, name: str) -> Response[str]:
        """The page's script and style sheet (served here: no CDN)."""
        if name not in STATIC_TYPES:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})
