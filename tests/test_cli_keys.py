"""``llmrelay keys ...`` and ``llmrelay tenants ...`` on a SQLite store in a
temporary directory, checked against the store itself."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from llmrelay.cli import app

pytest.importorskip("sqlalchemy")

from llmrelay.store import Store, Tenant, UsageRecord

SECRET = re.compile(r"sk-relay-[A-Za-z0-9_-]{20,}")
DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC

runner = CliRunner()


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """The command in this process, with no store or config from the machine."""
    return runner.invoke(app, list(args), env={"LLMRELAY_STORE_URL": None, "LLMRELAY_CONFIG": None, **(env or {})})


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relay.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as opened:
        yield opened


def keys(url: str, *args: str) -> Result:
    return run("keys", "--store", url, *args)


def tenants(url: str, *args: str) -> Result:
    return run("tenants", "--store", url, *args)


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def create(url: str, *args: str) -> tuple[str, str]:
    """A new key's id and secret, from ``keys create --json``."""
    result = keys(url, "create", "--json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return data["id"], data["key"]


def test_create_prints_the_secret_once_and_the_store_finds_it(url: str, store: Store) -> None:
    before = time.time()
    result = keys(url, "create", "--tenant", "acme", "--name", "ci", "--model", "gpt-4o", "--model", "claude",
                  "--expires-in", "30d", "--rpm", "60", "--tpm", "9000", "--budget", "5",
                  "--period", "day")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "store it now; it cannot be shown again" in result.stdout
    secrets = SECRET.findall(result.stdout)
    assert len(secrets) == 1
    key = store.key_by_secret(secrets[0])
    assert key is not None and key.id in result.stdout
    assert (key.tenant, key.name, key.models) == ("acme", "ci", ("gpt-4o", "claude"))
    assert (key.rpm, key.tpm, key.budget_usd, key.budget_period) == (60, 9000, 5.0, "day")
    assert key.expires_at is not None and before + 30 * DAY <= key.expires_at <= time.time() + 30 * DAY
    assert key.usable(time.time()) is None
    assert store.get_tenant("acme") is not None and "Tenant acme did not exist" in result.stdout


def test_create_json_and_the_store_from_the_environment(url: str, store: Store) -> None:
    store.create_tenant(Tenant("acme"))
    result = run("keys", "create", "-t", "acme", "--expires-in", "12h", "--json", env={"LLMRELAY_STORE_URL": url})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    key = store.key_by_secret(data["key"])
    assert key is not None and key.id == data["id"] and data["status"] == "active"
    assert data["prefix"] == key.prefix and data["key"].startswith(key.prefix)
    assert data["expires_at"] == pytest.approx(time.time() + 12 * 3600, abs=60)


def test_the_default_store_is_the_gateways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "conf" / "relay.yaml"
    config.parent.mkdir()
    config.write_text("store:\n  url: sqlite:///data/relay.db\n")
    monkeypatch.chdir(tmp_path)
    result = run("--config", str(config), "keys", "create", "-t", "acme", "--json")
    assert result.exit_code == 0, result.output
    secret = json.loads(result.stdout)["key"]
    with Store.open(f"sqlite:///{tmp_path / 'conf' / 'data' / 'relay.db'}") as store:
        assert store.key_by_secret(secret) is not None
    assert run("keys", "create", "-t", "acme").exit_code == 0  # no config: llmrelay.db here
    assert (tmp_path / "llmrelay.db").is_file()


def test_list_and_show_never_print_the_secret(url: str, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first, first_secret = create(url, "-t", "acme", "--name", "ci", "--rpm", "60", "--budget", "2.5")
    second, second_secret = create(url, "-t", "globex", "--model", "gpt-4o")
    listing = keys(url, "list")
    assert listing.exit_code == 0, listing.output
    for key_id, secret in ((first, first_secret), (second, second_secret)):
        assert key_id in listing.stdout and secret not in listing.output
        assert secret[:14] in listing.stdout  # the prefix tells keys apart
    assert "60 rpm" in listing.stdout and "$2.50/month" in listing.stdout and "active" in listing.stdout

    only = keys(url, "list", "--tenant", "globex", "--json")
    rows = json_lines(only)
    assert [row["id"] for row in rows] == [second] and "key" not in rows[0]
    assert rows[0]["models"] == ["gpt-4o"] and second_secret not in only.output

    shown = keys(url, "show", first)
    assert shown.exit_code == 0 and first in shown.stdout and "acme" in shown.stdout
    assert first_secret not in shown.output
    as_json = json.loads(keys(url, "show", first, "--json").stdout)
    assert as_json["id"] == first and "key" not in as_json and as_json["budget_usd"] == 2.5

    odd, _ = create(url, "-t", "acme", "--name", "[/]team [red]", "--model", "m[1]")
    assert "[/]team [red]" in keys(url, "list").stdout and "m[1]" in keys(url, "show", odd).stdout

    debug = run("--debug", "keys", "--store", url, "create", "-t", "acme", "--json")
    assert json.loads(debug.stdout)["key"] not in caplog.text
    for secret in (first_secret, second_secret):
        assert secret not in caplog.text


def test_revoke_stops_the_key(url: str, store: Store) -> None:
    key_id, secret = create(url, "-t", "acme")
    result = keys(url, "revoke", key_id)
    assert result.exit_code == 0 and "revoked" in result.stdout
    key = store.get_key(key_id)
    assert key is not None and key.usable(time.time()) == "revoked"
    found = store.key_by_secret(secret)
    assert found is not None and found.usable(time.time()) == "revoked"
    assert key_id not in keys(url, "list").stdout
    everything = keys(url, "list", "--all")
    assert key_id in everything.stdout and "revoked" in everything.stdout
    again = keys(url, "revoke", key_id)
    assert again.exit_code == 0 and "already revoked" in again.stdout
    rotated = keys(url, "rotate", key_id)
    assert rotated.exit_code == 1 and "revoked" in rotated.stderr


def test_rotate_changes_the_secret_and_keeps_the_id(url: str, store: Store) -> None:
    key_id, old = create(url, "-t", "acme", "--rpm", "5")
    result = keys(url, "rotate", key_id)
    assert result.exit_code == 0, result.output
    assert "cannot be shown again" in result.stdout
    (new,) = SECRET.findall(result.stdout)
    assert new != old
    assert store.key_by_secret(old) is None
    key = store.key_by_secret(new)
    assert key is not None and key.id == key_id and key.rpm == 5 and key.rotated_at is not None
    data = json.loads(keys(url, "rotate", key_id, "--json").stdout)
    assert data["id"] == key_id and store.key_by_secret(new) is None
    assert store.key_by_secret(data["key"]) is not None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("keys", "create", "-t", "acme", "--expires-in", "3x"), 1, "--expires-in '3x' is not a duration"),
        (("keys", "create", "-t", "acme", "--expires-in", "0d"), 1, "is not a duration"),
        (("keys", "create", "-t", "acme", "--budget", "-5"), 1, "--budget must be a dollar amount of 0 or more"),
        (("keys", "create", "-t", "acme", "--rpm", "0"), 1, "--rpm must be a whole number above 0"),
        (("keys", "create", "-t", "bad id"), 1, "tenant id 'bad id' is not valid"),
        (("keys", "create", "-t", "acme", "--period", "week"), 2, "--period"),
        (("keys", "create"), 2, "--tenant"),
        (("keys", "show", "key_0123456789abcdef"), 1, "no key 'key_0123456789abcdef'"),
        (("keys", "revoke", "key_0123456789abcdef"), 1, "no key 'key_0123456789abcdef'"),
        (("keys", "rotate", "nonsense"), 1, "no key 'nonsense'"),
        (("keys", "usage", "--by", "tenant,week"), 1, "--by week: not a field to group by"),
        (("keys", "usage", "--since", "2026-13-01"), 1, "--since '2026-13-01' is not a date"),
        (("tenants", "update", "nope", "--rpm", "3"), 1, "no tenant 'nope'"),
        (("tenants", "update", "acme"), 1, "nothing to change"),
        (("tenants", "update", "acme", "--rpm", "3", "--clear", "rpm"), 1, "contradict"),
        (("tenants", "create", "acme", "--tpm", "-1"), 1, "--tpm must be a whole number above 0"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    url: str, store: Store, args: tuple[str, ...], code: int, message: str
) -> None:
    store.create_tenant(Tenant("acme"))
    group, *rest = args
    result = run(group, "--store", url, *rest)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    if code == 1:
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_a_store_that_cannot_be_opened(tmp_path: Path) -> None:
    result = keys("mysql://localhost/db", "list")
    assert result.exit_code == 1 and "unsupported store URL scheme" in result.stderr


def test_tenants_create_list_update(url: str, store: Store) -> None:
    made = tenants(url, "create", "acme", "--rpm", "100", "--tpm", "50000", "--budget", "20", "--period", "total")
    assert made.exit_code == 0, made.output
    tenant = store.get_tenant("acme")
    assert tenant is not None and (tenant.rpm, tenant.tpm, tenant.budget_usd, tenant.budget_period) == (
        100, 50000, 20.0, "total",
    )  # fmt: skip
    assert tenants(url, "create", "globex", "--json").exit_code == 0
    create(url, "-t", "acme")
    create(url, "-t", "acme")

    listing = tenants(url, "list")
    assert "acme" in listing.stdout and "globex" in listing.stdout
    assert "100 rpm, 50,000 tpm" in listing.stdout and "$20.00 total" in listing.stdout
    rows = {row["id"]: row for row in json_lines(tenants(url, "list", "--json"))}
    assert rows["acme"]["budget_usd"] == 20.0 and rows["globex"]["rpm"] is None

    again = tenants(url, "create", "acme")
    assert again.exit_code == 1 and "tenant 'acme' already exists" in again.stderr

    updated = tenants(url, "update", "acme", "--rpm", "7", "--budget", "3", "--period", "month")
    assert updated.exit_code == 0, updated.output
    tenant = store.get_tenant("acme")
    assert tenant is not None and (tenant.rpm, tenant.tpm, tenant.budget_usd, tenant.budget_period) == (
        7, 50000, 3.0, "month",
    )  # fmt: skip
    cleared = tenants(url, "update", "acme", "--clear", "tpm", "--clear", "budget", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout)["tpm"] is None
    tenant = store.get_tenant("acme")
    assert tenant is not None and (tenant.rpm, tenant.tpm, tenant.budget_usd) == (7, None, None)


def _record(n: int, tenant: str, key_id: str, model: str, day: int, status: int = 200) -> UsageRecord:
    return UsageRecord(
        id=f"u{n}", request_id=f"r{n}", tenant=tenant, key_id=key_id, route="/v1/chat/completions", model=model,
        status=status, prompt_tokens=100 * n, completion_tokens=10 * n, cached_tokens=n, cost_usd=0.01 * n,
        created_at=T0 + day * DAY + 60,
    )  # fmt: skip


def test_usage_totals_from_the_ledger(url: str, store: Store) -> None:
    acme, _ = create(url, "-t", "acme")
    globex, _ = create(url, "-t", "globex")
    store.add_usage([
        _record(1, "acme", acme, "gpt-4o", 0),
        _record(2, "acme", acme, "gpt-4o", 1, status=500),
        _record(3, "acme", acme, "claude", 1),
        _record(4, "globex", globex, "gpt-4o", 2),
    ])  # fmt: skip

    by_key = json_lines(keys(url, "usage", "--json"))
    assert {(r["tenant"], r["key_id"]): (r["requests"], r["errors"], r["prompt_tokens"]) for r in by_key} == {
        ("acme", acme): (3, 1, 600),
        ("globex", globex): (1, 0, 400),
    }

    result = keys(url, "usage", "--tenant", "acme", "--by", "model,day")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("gpt-4o" in line and "2026-01-02" in line and "$0.0200" in line for line in lines)
    assert any("claude" in line and "2026-01-02" in line and "300" in line for line in lines)
    assert any(line.split("│")[1].strip() == "total" and "$0.0600" in line for line in lines if "│" in line)
    assert "globex" not in result.stdout

    since = json_lines(keys(url, "usage", "--by", "", "--since", "2026-01-02", "--json"))
    assert len(since) == 1 and since[0]["requests"] == 3 and since[0]["cost_usd"] == pytest.approx(0.09)
    one_key = json_lines(keys(url, "usage", "--key", globex, "--by", "model", "--json"))
    assert one_key == [{"model": "gpt-4o", "requests": 1, "errors": 0, "prompt_tokens": 400, "completion_tokens": 40,
                        "cached_tokens": 4, "reasoning_tokens": 0, "cost_usd": pytest.approx(0.04)}]  # fmt: skip
    empty = keys(url, "usage", "--tenant", "nobody")
    assert empty.exit_code == 0 and "no usage recorded" in empty.stdout


def test_only_commands_that_create_make_a_store(tmp_path: Path) -> None:
    """Listing, showing, revoking in a folder with no store says where it looked and
    leaves no database behind; ``create`` makes it."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    for args in (("keys", "list"), ("keys", "show", "key_1"), ("keys", "revoke", "key_1"), ("keys", "usage"),
                 ("tenants", "list"), ("tenants", "update", "acme", "--rpm", "5")):  # fmt: skip
        result = run(args[0], "--store", url, *args[1:])
        assert result.exit_code == 1, (args, result.output)
        assert f"no store at {tmp_path / 'relay.db'}" in result.output, (args, result.output)
        assert list(tmp_path.iterdir()) == [], args
    assert tenants(url, "create", "acme").exit_code == 0
    assert (tmp_path / "relay.db").exists()
    assert keys(url, "list").exit_code == 0
