"""schemathesis over the OpenAPI schema, against a live portal (gunicorn, uvicorn workers): the people's API
with a person's token, then the agents' protocol with an agent token, long-poll waits held to 0.

Every answer must be documented and match its schema: no server error, no undocumented status, content type
or header, no body off its schema, no operation that forgets its authentication. A 429 is documented (the
throttles and sign-in limits), so it is an answer like another, not an error.

Not checked: whether the API *accepts* every request the schema allows (business rules refuse a sender that is
not yours) or *refuses* every request it does not (DRF reads the JSON number 0 as the string "0" and as false,
its documented leniency). Two operations are left out: deleting a personal token (the fuzzer would guess the
run's own token, numbered 1, and log itself out) and the test notification (it would send webhooks to the host
names the fuzzer made up)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.harness.portal import PortalServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,ignored_auth,missing_required_header,use_after_free,"
          "ensure_resource_availability")
LEFT_OUT = ("api_v1_tokens_destroy", "api_v1_notifications_test_create")
# Examples per operation, and the time both runs may take together.
EXAMPLES = {"people": 15, "agent": 25}
BUDGET_SECONDS = 170
MIN_2XX = 300
SEED = 21


def signed_up(server) -> tuple[requests.Session, str]:
    person = requests.Session()
    body = {"username": "fuzz", "email": "fuzz@example.org", "password": "a long enough passphrase"}
    assert person.post(f"{server.url}/api/v1/signup", json=body, timeout=30).status_code == 201
    token = person.post(f"{server.url}/api/v1/auth/token", json=body, timeout=30).json()["token"]
    person.headers["Authorization"] = f"Bearer {token}"
    return person, token


def fuzz(server, schema: Path, token: str, which: str, report: Path, deadline: float) -> tuple[int, list[dict]]:
    paths = ["--include-path-regex", "^/api/agent/"] if which == "agent" else ["--exclude-path-regex", "^/api/agent/"]
    left_out = [arg for operation in LEFT_OUT for arg in ("--exclude-operation-id", operation)]
    har = report / f"{which}.har"
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", str(schema), "--url", server.url, "-H", f"Authorization: Bearer {token}",
         "--checks", CHECKS, "--max-examples", str(EXAMPLES[which]), "--seed", str(SEED), "--workers", "1",
         "--request-timeout", "30", "--report", "har", "--report-har-path", str(har), "--no-color",
         *paths, *left_out],
        # Its crash cache (.schemathesis/) goes in the test's folder, not the checkout.
        cwd=report, capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1))
    (report / f"{which}.txt").write_text(run.stdout + run.stderr)
    return run.returncode, json.loads(har.read_text())["log"]["entries"]


def test_every_answer_matches_the_schema(tmp_path):
    deadline = time.monotonic() + BUDGET_SECONDS
    # Long-poll waits are 0 (the server's hold): a claim is answered at once, as fuzzing needs.
    with PortalServer(DTN_CLAIM_HOLD_SECONDS="0", DTN_WEB_WORKERS="2") as server:
        person, person_token = signed_up(server)
        sender = person.post(f"{server.url}/register", json={"name": "fuzzed", "role": "sender"}, timeout=30).json()
        schema = tmp_path / "schema.json"
        schema.write_text(requests.get(f"{server.url}/api/schema/?format=json", timeout=30).text)

        # The agents first: the people's run may delete or re-key the container whose token the agents' run uses.
        agent_code, agent_answers = fuzz(server, schema, sender["agent_token"], "agent", tmp_path, deadline)
        people_code, people_answers = fuzz(server, schema, person_token, "people", tmp_path, deadline)
        log = server.log()

    answers = agent_answers + people_answers
    by_class = Counter(f"{entry['response']['status'] // 100}xx" for entry in answers)
    print(f"schemathesis: {len(answers)} answers: {dict(sorted(by_class.items()))}"
          f" (agents {len(agent_answers)}, people {len(people_answers)}); {BUDGET_SECONDS - (deadline - time.monotonic()):.0f} s")
    outputs = "\n".join((tmp_path / f"{which}.txt").read_text()[-4000:] for which in ("agent", "people"))
    assert (agent_code, people_code) == (0, 0), outputs
    assert by_class["5xx"] == 0, outputs
    assert by_class["2xx"] >= MIN_2XX, by_class
    assert "Traceback" not in log, log[-4000:]
