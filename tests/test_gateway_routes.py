"""The gateway's route table: templates, parameters, 404 and 405."""

from __future__ import annotations

import pytest

from llmrelay.gateway.exchange import OPENAI, Api, Exchange
from llmrelay.gateway.http import HTTPError
from llmrelay.gateway.routes import RouteTable

OTHER = Api("other", lambda status, body: {"status": status})


async def nothing(gw: object, ex: Exchange) -> None:
    return None


def table() -> RouteTable:
    routes = RouteTable()
    routes.add("GET", "/v1/models", nothing)
    routes.add("GET", "/v1/models/{model:path}", nothing)
    routes.add("GET", "/v1/things/{thing_id}", nothing)
    routes.add("DELETE", "/v1/things/{thing_id}", nothing)
    routes.add("POST", "/v1/things/{thing_id}/revoke", nothing)
    routes.add("POST", "/v1beta/models/{model}:generateContent", nothing, api=OTHER, metered=True)
    routes.add("POST", "/v1/messages", nothing, api=OTHER)
    routes.add("GET", "/health", nothing, auth=False)
    return routes


def test_fixed_paths_match_without_parameters() -> None:
    endpoint, params = table().match("GET", "/v1/models")
    assert params == {} and endpoint.name == "/v1/models" and endpoint.auth and not endpoint.metered
    assert table().match("GET", "/health")[0].auth is False


def test_a_path_parameter_takes_the_rest_of_the_path() -> None:
    endpoint, params = table().match("GET", "/v1/models/openai/gpt-4o-mini")
    assert params == {"model": "openai/gpt-4o-mini"} and endpoint.name == "/v1/models/{model}"


def test_a_parameter_holds_any_character_but_a_slash_and_the_handler_checks_it() -> None:
    assert table().match("GET", "/v1/models/a\r\nb")[1] == {"model": "a\r\nb"}
    assert table().match("GET", "/v1/things/a\x00b")[1] == {"thing_id": "a\x00b"}
    with pytest.raises(HTTPError) as caught:
        table().match("GET", "/v1/things/a/b")
    assert caught.value.status == 404


def test_a_parameter_shares_its_segment_with_literal_text() -> None:
    endpoint, params = table().match("POST", "/v1beta/models/gemini-2.0-flash:generateContent")
    assert params == {"model": "gemini-2.0-flash"} and endpoint.api is OTHER and endpoint.metered
    with pytest.raises(HTTPError) as caught:
        table().match("POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent")
    assert caught.value.status == 404


def test_another_method_is_a_405_naming_the_allowed_ones() -> None:
    for method, path, allowed in (
        ("POST", "/v1/models", "GET"),
        ("PATCH", "/v1/things/t1", "DELETE, GET"),
        ("GET", "/v1/things/t1/revoke", "POST"),
    ):
        with pytest.raises(HTTPError) as caught:
            table().match(method, path)
        assert caught.value.status == 405 and caught.value.headers["allow"] == allowed, path
        assert f"{method} is not allowed on {path}" in caught.value.message


def test_unknown_paths_are_404_in_the_format_of_the_api_they_lie_under() -> None:
    routes = table()
    with pytest.raises(HTTPError) as caught:
        routes.match("GET", "/v1/nothing-here")
    assert caught.value.status == 404
    assert routes.api_for("/v1/messages/batches") is OTHER
    assert routes.api_for("/v1beta/models/m:generateContent") is OTHER
    assert routes.api_for("/v1/nothing-here") is OPENAI


def test_endpoints_lists_every_method_and_name() -> None:
    assert ("DELETE", "/v1/things/{thing_id}") in table().endpoints()
    assert ("GET", "/v1/models/{model}") in table().endpoints()
    assert len(table().endpoints()) == 8
