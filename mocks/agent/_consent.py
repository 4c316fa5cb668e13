"""The mock agent's own OAuth client, for a task that asks it to call an OAuth-protected
resource with a token it gets itself: RFC 9728 discovery from the resource URL, RFC 8414
metadata, an authorization request with PKCE S256 and the resource (RFC 7636, RFC 8707) for
the human to approve in their browser, and a loopback redirect URI (RFC 8252 §7.3) where the
authorization response arrives."""

from __future__ import annotations

import queue
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["CLIENT_ID", "LoopbackRedirect", "checked_response"]

CLIENT_ID = "provspec-mock-agent"
"""A public client: no secret, PKCE only."""


def checked_response(
    query: str, *, state: str, issuer: str, metadata: dict[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """The authorization response's parameters, and what in it differs from this flow's
    (RFC 6749 §10.12: the state; RFC 9207 §2.4: the issuer, when given or announced)."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    wrong = []
    if params.get("state") != state:
        wrong.append("state")
    iss = params.get("iss")
    announced = metadata.get("authorization_response_iss_parameter_supported") is True
    if (iss is not None and iss != issuer) or (iss is None and announced):
        wrong.append("iss")
    return params, wrong


class LoopbackRedirect:
    """A redirect URI on 127.0.0.1 that keeps the query of every request it gets; open
    while the `with` block runs."""

    def __init__(self) -> None:
        received: queue.Queue[str] = queue.Queue()
        self._received = received

        class Callback(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.put(urlsplit(self.path).query)
                body = b"provspec mock agent: you can close this window.\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the agent's output is its transcript."""

        self._server = HTTPServer(("127.0.0.1", 0), Callback)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackRedirect:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def wait(self, timeout: float) -> str | None:
        """The query of the first authorization response to arrive (None: none in time)."""
        try:
            return self._received.get(timeout=timeout)
        except queue.Empty:
            return None
