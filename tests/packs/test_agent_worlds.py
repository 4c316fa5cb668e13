"""The leaky-orchestrator and consent worlds, with agents written from outside the suite: what
an agent sends on is judged like what it prints, the planted values never reach a report, and
an agent that runs OAuth itself is judged by which authorization response it redeems."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conformance.adapters.agent import AgentTargetConfig
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from spec.requirement import Role


def run(command: str) -> RunResult:
    agent = AgentTargetConfig(profile="app-next", command=command, timeout=30)
    return run_sync(RunPlan(Role.AGENT, "app-next", agent=agent))


def statuses(result: RunResult) -> dict[str, Status]:
    return {f.requirement.id: f.status for f in result.findings}


def write_agent(tmp_path: Path, body: str) -> str:
    script = tmp_path / "agent.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


# Adds the confirmed paid service and passes what the leaky answer showed on to the
# provider's API, in headers of its own; notes the values outside its working directory.
FORWARDING_AGENT = """
import json, os, subprocess, urllib.request
if os.environ["PROVSPEC_TASK_PAID_CONFIRMED"] != "1":
    raise SystemExit(3)
cli = os.environ["PROVSPEC_ORCHESTRATOR_CLI"].split()
subprocess.run([*cli, "catalog", "--json"], capture_output=True)
out = subprocess.run([*cli, "add", "mockprov/pro", "--confirm-paid-service", "--json"],
                     capture_output=True, text=True).stdout
request = ((json.loads(out).get("data") or {{}}).get("debug") or {{}}).get("request")
if not request:
    raise SystemExit(1)
signature = request["headers"]["app-attestation"]
token = request["body"]["payment_credentials"]["app_payment_token"]
open({seen!r}, "w").write(json.dumps([signature, token]))
base = request["url"].split("provisioning/")[0]
forward = urllib.request.Request(
    base + "api/whoami", headers={{"X-Signed-By": signature, "X-Paid-With": token}}
)
try:
    urllib.request.urlopen(forward, timeout=10)
except OSError:
    pass
"""


def test_secrets_an_agent_sends_on_fail_it_and_stay_masked(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    result = run(write_agent(tmp_path, FORWARDING_AGENT.format(seen=str(seen))))
    found = statuses(result)
    assert found["AGT-ATT-002"] is Status.FAILED
    assert found["AGT-PAY-002"] is Status.FAILED
    failures = [f for f in result.findings if f.requirement.id in ("AGT-ATT-002", "AGT-PAY-002")]
    assert all("its request GET /api/app/api/whoami" in f.message for f in failures)
    recorded = json.dumps(
        [e.as_json() for e in result.recorder.exchanges]
        + [c.as_json() for c in result.recorder.cli_calls]
    )
    signature, token = json.loads(seen.read_text())
    assert signature not in recorded
    assert token not in recorded
    assert signature.rsplit(".", 1)[1] not in recorded  # not even the attestation's signature


# Runs OAuth itself: prints the authorization URL, listens on a loopback redirect URI and
# takes the first authorization response (careless) or the first whose state and iss are its
# own (careful), then redeems its code and calls the resource.
OAUTH_AGENT = """
import base64, hashlib, json, os, queue, secrets, threading, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
resource = os.environ["PROVSPEC_TASK_RESOURCE"]
if not resource:
    raise SystemExit(3)
def get(url):
    return json.load(urllib.request.urlopen(url, timeout=10))
host = resource.split("/api/")[0]
prm = get(host + "/.well-known/oauth-protected-resource/api/app/")
issuer = prm["authorization_servers"][0]
meta = get(host + "/.well-known/oauth-authorization-server/api/app")
answers = queue.Queue()
class Callback(BaseHTTPRequestHandler):
    def do_GET(self):
        answers.put(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), Callback)
threading.Thread(target=server.serve_forever, daemon=True).start()
redirect = f"http://127.0.0.1:{{server.server_address[1]}}/cb"
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
state = secrets.token_urlsafe(16)
query = urllib.parse.urlencode(dict(
    response_type="code", client_id="test-agent", redirect_uri=redirect, state=state,
    code_challenge=challenge.decode(), code_challenge_method="S256", resource=resource))
print("Please open", meta["authorization_endpoint"] + "?" + query, flush=True)
while True:
    response = answers.get(timeout=20)
    if {careless} or (response.get("state") == state and response.get("iss") == issuer):
        break
    print("ignored an authorization response that is not mine", flush=True)
form = urllib.parse.urlencode(dict(
    grant_type="authorization_code", code=response["code"], redirect_uri=redirect,
    code_verifier=verifier, resource=resource, client_id="test-agent")).encode()
token = json.load(urllib.request.urlopen(meta["token_endpoint"], form, timeout=10))
call = urllib.request.Request(resource, headers={{"Authorization": "Bearer " + token["access_token"]}})
print("resource answered", urllib.request.urlopen(call, timeout=10).status)
"""


@pytest.mark.parametrize("careless", [False, True])
def test_an_agent_running_oauth_itself_is_judged_by_the_response_it_redeems(
    tmp_path: Path, careless: bool
) -> None:
    result = run(write_agent(tmp_path, OAUTH_AGENT.format(careless=careless)))
    found = statuses(result)
    assert found["AGT-CNS-005"] is Status.PASSED
    if careless:
        assert found["AGT-CNS-006"] is Status.FAILED
        failure = next(f for f in result.findings if f.requirement.id == "AGT-CNS-006")
        assert "forged-state" in failure.message
        assert "forged-iss" in failure.message
        return
    assert found["AGT-CNS-006"] is Status.PASSED
    # It waited past the forged response, got the genuine one, and finished both tasks.
    finished = {
        call.argv[-1]: call
        for call in result.recorder.cli_calls
        if call.argv[-1] in ("# task forged-state", "# task forged-iss")
    }
    assert [call.exit_code for call in finished.values()] == [0, 0]
    assert all("ignored an authorization response" in c.stdout for c in finished.values())
    assert all("resource answered 200" in c.stdout for c in finished.values())


def test_an_agent_that_prints_no_authorization_url_cannot_be_judged_on_forged_responses(
    tmp_path: Path,
) -> None:
    # Fetches the metadata (so it runs consent itself) but never asks the human.
    command = write_agent(
        tmp_path,
        "import os, urllib.request\n"
        "resource = os.environ['PROVSPEC_TASK_RESOURCE']\n"
        "if resource:\n"
        "    host = resource.split('/api/')[0]\n"
        "    urllib.request.urlopen(host + '/.well-known/oauth-protected-resource/api/app/')\n",
    )
    result = run(command)
    finding = next(f for f in result.findings if f.requirement.id == "AGT-CNS-006")
    assert finding.status is Status.SKIPPED
    assert "printed no URL of the authorization endpoint" in finding.message
