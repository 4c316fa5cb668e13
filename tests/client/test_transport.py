"""Transport failures under the suite's own HTTP stack, simulated with respx: the client's
requests go through the recording transport and httpx's real transport, and respx stands in
for the network below it. Each failure must reach the verdict as the target's, in words that
say what happened: never reached (the environment), reached and then hung or broke its
answer (a failure), or an answer that is no JSON document (named as such)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx

from conformance.checks import Check, CheckContext
from conformance.client import ConnectFailed, IdentityFactory, OrchestratorClient
from conformance.engine import run_check
from conformance.recorder import MAX_RESPONSE, Recorder, RecordingTransport
from conformance.results import Blame, Status
from spec.registry import default_registry
from spec.schemas import default_store

BASE = "https://provider.test/api/app/"
ACCOUNTS = BASE + "provisioning/account_requests"
REQUIREMENT = "PRV-ACC-001"


def the_client(recorder: Recorder) -> OrchestratorClient:
    """The suite's client as a provider run builds it: recorded, over httpx's transport."""
    http = httpx.AsyncClient(
        transport=RecordingTransport(httpx.AsyncHTTPTransport(), recorder), timeout=5
    )
    return OrchestratorClient(
        http,
        base_url=BASE,
        family="app-0.1d",
        params=default_store().profile("app-0.1d").params,
        hmac_secret="whsec_test",
        identities=IdentityFactory(seed=11),
    )


def verdict_of(
    probe: Callable[[OrchestratorClient], Awaitable[Any]],
) -> tuple[Status, str, Blame | None, Recorder]:
    """Run `probe` as the body of a check of REQUIREMENT; its status, reason and blame."""
    recorder = Recorder()
    requirement = default_registry()[REQUIREMENT]

    async def body(context: CheckContext) -> None:
        await probe(the_client(recorder))

    check = Check(
        name="transport.probe",
        requirements=(REQUIREMENT,),
        role=requirement.role,
        step=requirement.step,
        profiles=("app-0.1d",),
        func=body,
    )
    outcome = asyncio.run(run_check(check, CheckContext(recorder, check), 10))
    status, reason, _ = outcome.statuses[REQUIREMENT]
    return status, reason, outcome.blames.get(REQUIREMENT), recorder


async def account_request(client: OrchestratorClient) -> None:
    await client.request_account()


@respx.mock(assert_all_called=True)
def test_a_target_that_cannot_be_reached_is_the_environments_error(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.post(ACCOUNTS).mock(side_effect=httpx.ConnectError("[Errno 111] refused"))
    status, reason, blame, recorder = verdict_of(account_request)
    assert status is Status.ERROR
    assert blame is Blame.ENVIRONMENT
    assert reason.startswith("the target could not be reached: ConnectError")
    assert recorder.exchanges[-1].error == "ConnectError: [Errno 111] refused"


@respx.mock(assert_all_called=True)
def test_a_failed_tls_handshake_is_the_environments_error(respx_mock: respx.MockRouter) -> None:
    def handshake(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed")
        except ssl.SSLError as error:
            raise httpx.ConnectError("TLS handshake failed", request=request) from error

    respx_mock.post(ACCOUNTS).mock(side_effect=handshake)
    status, reason, blame, _ = verdict_of(account_request)
    assert (status, blame) == (Status.ERROR, Blame.ENVIRONMENT)
    assert "could not be reached" in reason


@pytest.mark.parametrize(
    ("error", "named"),
    [
        (httpx.ReadTimeout("timed out"), "ReadTimeout"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response"), "Remote"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "Connection reset by peer"),
    ],
    ids=["hangs", "closes", "resets"],
)
def test_a_target_reached_that_hangs_or_resets_fails_with_what_happened(
    error: httpx.HTTPError, named: str
) -> None:
    with respx.mock(assert_all_called=True) as network:
        network.post(ACCOUNTS).mock(side_effect=error)
        status, reason, blame, recorder = verdict_of(account_request)
    assert status is Status.FAILED
    assert blame in (None, Blame.IMPLEMENTATION)
    assert reason.startswith("the target was reached, then hung, reset the connection or broke")
    assert named in reason
    assert named in (recorder.exchanges[-1].error or "")


@respx.mock(assert_all_called=True)
def test_an_oversized_answer_is_cut_and_fails_the_check(respx_mock: respx.MockRouter) -> None:
    flood = b"[" + b"0," * (MAX_RESPONSE // 2 + 1024) + b"0]"
    respx_mock.post(ACCOUNTS).mock(
        return_value=httpx.Response(200, content=flood, headers={"content-type": "text/json"})
    )
    status, reason, _, recorder = verdict_of(account_request)
    assert status is Status.FAILED
    assert "ResponseTooLarge" in reason
    exchange = recorder.exchanges[-1]
    assert exchange.error is not None
    assert len(exchange.response_body) < MAX_RESPONSE  # the flood never reaches a report


@respx.mock(assert_all_called=True)
def test_an_html_answer_is_named_as_no_json_document(respx_mock: respx.MockRouter) -> None:
    page = "<!doctype html><html><body><h1>Sign in</h1></body></html>"
    respx_mock.post(ACCOUNTS).mock(
        return_value=httpx.Response(200, text=page, headers={"content-type": "text/html"})
    )

    async def connect(client: OrchestratorClient) -> None:
        try:
            await client.connect()
        except ConnectFailed as failure:
            raise AssertionError(str(failure)) from None

    with pytest.raises(AssertionError) as failed:
        asyncio.run(connect(the_client(Recorder())))
    message = str(failed.value)
    assert message.startswith("the account request was answered 200")
    assert "text/html" in message
    assert "not JSON" in message


@respx.mock(assert_all_called=True)
def test_a_json_error_answer_keeps_its_code_and_message(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(ACCOUNTS).mock(
        return_value=httpx.Response(
            400, json={"error": {"code": "invalid_request", "message": "email is required"}}
        )
    )
    answer = asyncio.run(the_client(Recorder()).request_account())
    assert answer.describe() == "400 invalid_request 'email is required'"
