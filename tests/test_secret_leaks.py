"""Secrets never leak: the real `apex-platform demo` runs with every secret setting it can
run with set to a unique marker (and the secrets the demo makes or takes from its fake
vendors read back afterwards), then `apex-platform dev` on the same APEX_HOME serves the
demo's data and histories while every place an operator or a caller can read is grepped
for every secret: the logs under APEX_HOME, the processes' output, stack.json, the CLI's
JSON outputs, error bodies of bad requests, /metrics, /readyz, /v1/plugins, and the
Temporal histories of the demo's workflows, raw and decoded through the codec.

Secrets that cannot be markers here, and why (each is still grepped for as the value the
run ended up using, when it has one):

- APEX_TEMPORAL_API_KEY: an API key turns TLS on, and the embedded Temporal has none;
- APEX_POSTGRES_DSN, APEX_INBOX_DSN, APEX_REDIS_URL, APEX_REDIS_COORDINATOR_URL,
  APEX_GRAPH_URI, APEX_GRAPH_PASSWORD: the embedded stack sets them to its own servers,
  with its own generated passwords — those passwords are the markers (read from
  APEX_HOME/postgres/password and APEX_HOME/redis/password);
- the vendors' API credentials (Turvo, SONAR, Plaid, HubSpot, QuickBooks, Samsara's API
  token and webhook secret, Front's API token): the demo points the connectors at fake vendors with the
  fakes' own credentials; the values the run used are read from its environment at the
  end (the demo runs in a wrapper that writes them to a 0600 file);
- APEX_SAMSARA_API_TOKENS, APEX_FRONTAPP_API_TOKENS: accounts of their own, which the fake
  vendors do not have.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import SecretStr
from support.procs import CLI, ApexProcess, wait_for, wait_http
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client

from apex_platform.settings import TemporalSettings
from apex_platform.stack import read_stack
from apex_platform.stack.ports import free_port
from apex_platform.temporal.client import data_converter
from apex_platform.temporal.encryption import PayloadSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: every secret setting of core, the connectors and the sinks (tests/test_secret_settings.py
#: finds them all; test_every_secret_variable_is_covered below keeps this list complete)
SECRET_VARIABLES = (
    "APEX_ADMIN_TOKEN",
    "APEX_API_KEYS",
    "APEX_TEMPORAL_API_KEY",
    "APEX_POSTGRES_DSN",
    "APEX_INBOX_DSN",
    "APEX_FRONTAPP_SIGNING_SECRET",
    "APEX_FRONTAPP_API_SECRET",
    "APEX_FRONTAPP_API_TOKEN",
    "APEX_FRONTAPP_API_TOKENS",
    "APEX_SONAR_PASSWORD",
    "APEX_SONAR_WEBHOOK_SECRET",
    "APEX_TURVO_WEBHOOK_TOKEN",
    "APEX_TURVO_API_KEY",
    "APEX_TURVO_CLIENT_SECRET",
    "APEX_TURVO_PASSWORD",
    "APEX_SAMSARA_WEBHOOK_SECRET",
    "APEX_SAMSARA_API_TOKEN",
    "APEX_SAMSARA_API_TOKENS",
    "APEX_PLAID_SECRET",
    "APEX_PLAID_ACCESS_TOKENS",
    "APEX_CRM_ACCESS_TOKEN",
    "APEX_FINANCIAL_CLIENT_SECRET",
    "APEX_FINANCIAL_REFRESH_TOKENS",
    "APEX_FINANCIAL_TOKEN_STORE_DSN",
    "APEX_GRAPH_URI",
    "APEX_GRAPH_PASSWORD",
    "APEX_REDIS_URL",
    "APEX_REDIS_COORDINATOR_URL",
    "APEX_QDRANT_API_KEY",
    "APEX_EMBEDDINGS_API_KEY",
    "APEX_PAYLOAD_KEYS",
)
#: settings whose value holds an address next to the secret: the secret part is grepped
#: for (the stack's passwords), not the address
ADDRESSES = {
    "APEX_POSTGRES_DSN",
    "APEX_INBOX_DSN",
    "APEX_FINANCIAL_TOKEN_STORE_DSN",
    "APEX_REDIS_URL",
    "APEX_REDIS_COORDINATOR_URL",
    "APEX_GRAPH_URI",
}

#: runs the demo in-process and, whatever its outcome, writes the secret settings it ended
#: with (its own generated ones and the fake vendors' included) to argv[1] (0600)
WRAPPER = """
import json, os, sys
import apex_platform.devstack as devstack
from apex_platform import cli

names, out = json.loads(sys.argv[2]), sys.argv[1]
original = devstack.run_demo

def run_demo(*args, **kwargs):
    try:
        return original(*args, **kwargs)
    finally:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({k: os.environ[k] for k in names if k in os.environ}, fh)

devstack.run_demo = run_demo
sys.argv = ["apex-platform", *sys.argv[3:]]
cli.main()
"""


def marker(name: str) -> str:
    return f"MARKER{name.removeprefix('APEX_').replace('_', '')}{secrets.token_hex(10)}"


def markers() -> dict[str, str]:
    """Every secret the demo still runs with, as a marker of its own."""
    env = {
        name: marker(name)
        for name in (
            "APEX_ADMIN_TOKEN",
            "APEX_FRONTAPP_SIGNING_SECRET",
            "APEX_FRONTAPP_API_SECRET",
            "APEX_QDRANT_API_KEY",  # local mode: configured, unused
            "APEX_EMBEDDINGS_API_KEY",  # the hash backend: configured, unused
        )
    }
    env["APEX_API_KEYS"] = marker("APEX_API_KEYS")
    env["APEX_PAYLOAD_KEYS"] = "leaktest:" + base64.b64encode(secrets.token_bytes(32)).decode()
    return env


def needles(final: dict[str, str], home: Path) -> dict[str, str]:
    """label -> secret value to look for: each secret the run used (JSON objects of
    secrets by their values, the payload key by its key material), the stack's passwords."""
    found: dict[str, str] = {}
    for name, value in final.items():
        if name in ADDRESSES:
            continue
        if name == "APEX_PAYLOAD_KEYS":
            found[name] = value.split(":", 1)[1]
            continue
        try:
            doc = json.loads(value)
        except ValueError:
            doc = value
        if isinstance(doc, dict):
            for key, secret in doc.items():
                if isinstance(secret, str) and secret:
                    found[f"{name}[{key}]"] = secret
        else:
            for i, part in enumerate(value.split(",")):
                found[f"{name}#{i}"] = part
    for server in ("postgres", "redis"):
        path = home / server / "password"
        if path.exists():
            found[f"{server} password"] = path.read_text().strip()
    for label, value in found.items():
        assert len(value) >= 8, f"{label} is too short to grep for"
    return found


def leaks(where: str, text: str | bytes, secrets_: dict[str, str]) -> list[str]:
    data = text.encode(errors="surrogateescape") if isinstance(text, str) else text
    out = []
    for label, value in secrets_.items():
        forms = {value.encode(), base64.b64encode(value.encode())}
        if any(form in data for form in forms):
            out.append(f"{label} in {where}")
    return out


def payloads_of(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in a protobuf message (a history)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                yield from payloads_of(item)


async def histories(
    address: str, namespace: str, payload_keys: str
) -> tuple[dict[str, bytes], dict[str, bytes], list[tuple[str, str]]]:
    """The raw history (JSON and every payload's bytes) and the decoded payloads of every
    workflow of the demo, by workflow id; and (source, record id) of the records they wrote."""
    raw_client = await Client.connect(address, namespace=namespace)  # no codec
    codec = data_converter(
        TemporalSettings(), PayloadSettings(keys=SecretStr(payload_keys), keys_file=None)
    ).payload_codec
    assert codec is not None
    raw: dict[str, bytes] = {}
    decoded: dict[str, bytes] = {}
    records: list[tuple[str, str]] = []
    async for wf in raw_client.list_workflows():
        attrs = wf.search_attributes
        records += [
            (str(attrs["ApexSource"][0]), str(r)) for r in attrs.get("ApexRecordId", [])[:1] if "ApexSource" in attrs
        ]
        fetched = await raw_client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        history = History(events=fetched.events)
        sealed = list(payloads_of(history))
        key = f"{wf.id}/{wf.run_id}"
        raw[key] = json_format.MessageToJson(history).encode() + b"".join(p.data for p in sealed)
        opened = await codec.decode(sealed) if sealed else []
        decoded[key] = b"\n".join(p.data + b"".join(p.metadata.values()) for p in opened)
    return raw, decoded, records


async def store_rows(dsn: str) -> list[str]:
    """Every row the demo left in PostgreSQL: the sink's records and dead letters, the inbox's
    deliveries (bodies as stored) and lineage, as JSON text."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        rows: list[str] = []
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            rows += [r[0] for r in await conn.fetch(f"SELECT row_to_json(t)::text FROM {name} t")]
        return rows
    finally:
        await conn.close()


async def record_keys(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT DISTINCT ON (source) source, id FROM apex.records ORDER BY source, id")
        return [(r["source"], r["id"]) for r in rows]
    finally:
        await conn.close()


def base_env(tmp_path: Path) -> dict[str, str]:
    """The session's environment without any APEX_ setting, with ports of this test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    env.update(
        {
            "APEX_HOME": str(tmp_path / "home"),
            "APEX_PLUGINS": "all",
            "APEX_LOG_LEVEL": "INFO",
            "APEX_TEMPORAL_PORT": str(free_port()),
            "APEX_TEMPORAL_UI_PORT": str(free_port()),
            "APEX_POSTGRES_PORT": str(free_port()),
            "APEX_REDIS_PORT": str(free_port()),
            "APEX_API_PORT": str(free_port()),
        }
    )
    return env


def cli_json(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{args}: {out.stderr[-2000:]}"
    json.loads(out.stdout)
    return out.stdout + out.stderr


def test_every_secret_variable_is_covered() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_secret_settings import SECRET_FIELDS, variable

    assert {variable(cls, name) for cls, name, _ in SECRET_FIELDS} <= set(SECRET_VARIABLES)


def test_no_secret_leaks_from_the_demo(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), **markers()}
    home = Path(env["APEX_HOME"])
    used = tmp_path / "used-secrets.json"
    demo = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(used), json.dumps(SECRET_VARIABLES), "demo", "--home", str(home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=330,
    )
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    final: dict[str, str] = json.loads(used.read_text())
    for name in markers():
        assert final[name] == env[name]  # the demo ran with the markers
    secrets_ = needles(final, home)
    assert {"postgres password", "redis password", "APEX_TURVO_CLIENT_SECRET#0"} <= set(secrets_)
    found = leaks("the demo's stdout/stderr", demo.stdout + demo.stderr, secrets_)

    # the same APEX_HOME served by `apex-platform dev`: the demo's data and histories
    dev_env = {**env, **{k: v for k, v in final.items() if k not in ADDRESSES}, "APEX_MAX_BODY_BYTES": "65536"}
    dev = ApexProcess(["dev"], dev_env, tmp_path / "dev.log")
    dev.env = dev_env  # not the session's APEX_ settings (ApexProcess adds os.environ)
    dev.start()
    try:
        wait_for(lambda: read_stack(home) is not None or not dev.running, timeout=120, what="stack.json")
        info = read_stack(home)
        assert info is not None, dev.output()[-3000:]
        url = info["api"]["url"]
        wait_http(f"{url}/healthz", timeout=120, proc=dev)

        # stack.json: only the fields that by design carry the stack's own passwords (the
        # file is 0600) may hold them; no other secret anywhere in it
        stack_doc = json.loads((home / "stack.json").read_text())
        for server, fields in (("postgres", ("dsn",)), ("redis", ("url",))):
            for field in fields:
                stack_doc[server].pop(field, None)
        found += leaks("stack.json", json.dumps(stack_doc), secrets_)
        # the grep finds what is there: the DSN does carry the stack's password
        assert leaks("the DSN", info["postgres"]["dsn"], secrets_) == ["postgres password in the DSN"]

        # the CLI in a second terminal (it goes through the running stack)
        cli_env = dev_env
        for args in (
            ("sources", "list", "--json"),
            ("inbox", "status", "--json"),
            ("inbox", "list", "--json"),
            ("dlq", "list", "--json"),
            ("plugins", "list", "--json"),
        ):
            found += leaks(" ".join(args), cli_json(cli_env, *args), secrets_)

        raw, decoded, records = asyncio.run(
            histories(info["temporal"]["address"], info["temporal"]["namespace"], final["APEX_PAYLOAD_KEYS"])
        )
        assert len(raw) >= 5, sorted(raw)  # the demo's drains, pollers, batch files
        stored = asyncio.run(store_rows(info["postgres"]["dsn"]))
        found += leaks("PostgreSQL's records, inbox and lineage", "\n".join(stored), secrets_)
        records += asyncio.run(record_keys(info["postgres"]["dsn"]))
        assert records, sorted(raw)
        for source, record_id in dict(records).items():  # one record of each source
            found += leaks(f"trace {source}", cli_json(cli_env, "trace", source, record_id, "--json"), secrets_)
        for wf_id, data in raw.items():
            found += leaks(f"the raw history of {wf_id}", data, secrets_)
        # decoded through the codec: no secret is part of any workflow's data by design
        assert any(b'"source"' in data for data in decoded.values()), {k: v[:80] for k, v in decoded.items()}  # decoded
        assert not any(b'"source"' in data for data in raw.values())  # and raw is sealed
        for wf_id, data in decoded.items():
            found += leaks(f"the decoded history of {wf_id}", data, secrets_)

        # what callers of the API read
        admin = {"Authorization": f"Bearer {final['APEX_ADMIN_TOKEN']}"}
        push = {"Authorization": f"Bearer {final['APEX_API_KEYS'].split(',')[0]}", "Content-Type": "application/json"}
        answers: list[tuple[str, httpx.Response]] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            answers += [
                ("401 admin without token", http.get("/v1/dead-letters")),
                ("401 admin wrong token", http.get("/v1/dead-letters", headers={"Authorization": "Bearer x" * 3})),
                ("401 push without key", http.post("/v1/records/llm", content=b"{}")),
                ("401 front unsigned", http.post("/webhooks/frontapp", content=b'{"type":"x"}')),
                ("400 push malformed", http.post("/v1/records/llm", content=b'{"conversation_id": ', headers=push)),
                ("404 webhook", http.post("/webhooks/nosuch", content=b"{}")),
                ("404 push", http.post("/v1/records/nosuch", content=b"{}", headers=push)),
                ("404 dead letter", http.get("/v1/dead-letters/999999", headers=admin)),
                ("413 push", http.post("/v1/records/llm", content=b"x" * 100_000, headers=push)),
                ("413 webhook", http.post("/webhooks/turvo", content=b"x" * 100_000)),
                ("metrics", http.get("/metrics")),
                ("readyz", http.get("/readyz")),
                ("readyz admin", http.get("/readyz", headers=admin)),
                ("plugins", http.get("/v1/plugins")),
                ("plugins admin", http.get("/v1/plugins", headers=admin)),
            ]
        statuses = {label: resp.status_code for label, resp in answers}
        for label, resp in answers:
            expected = label.split()[0]
            if expected.isdigit():
                assert resp.status_code == int(expected), (label, resp.status_code, resp.text[:300])
            found += leaks(f"the API's {label} answer", resp.content + str(resp.headers).encode(), secrets_)
        assert statuses["metrics"] == 200
    finally:
        if dev.proc is not None:
            dev.proc.send_signal(signal.SIGINT)
        code = dev.stop(timeout=120)
    assert code == 0, dev.output()[-3000:]
    found += leaks("the dev process's output", dev.output(), secrets_)

    # every log file under APEX_HOME (the servers', the worker's)
    logs = [p for p in home.rglob("*") if p.is_file() and ("log" in p.name.lower() or p.suffix in (".log", ".out"))]
    assert logs, "no log file under APEX_HOME"
    for path in logs:
        found += leaks(str(path.relative_to(home)), path.read_bytes(), secrets_)
    assert not found, "\n".join(found)
