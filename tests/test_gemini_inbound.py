"""The Gemini inbound codec: Gemini API request bodies -> canonical requests (every
field, and every refusal naming its field path), answers and streams -> what the
official ``google-genai`` SDK parses (driven end to end through an injected
transport), and round trips through the outbound Gemini codec and decoders."""

from __future__ import annotations

import base64
import copy
import importlib
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay._assemble import StreamAssembler
from llmrelay._sse import SSEDecoder
from llmrelay.providers.gemini import codec
from llmrelay.providers.gemini.codec import CALL_ID, SIGNATURE
from llmrelay.providers.gemini.errors import payload_error
from llmrelay.providers.gemini.inbound import (
    StreamEncoder,
    batch_embed_request_from_wire,
    batch_embed_response_to_wire,
    count_tokens_request_from_wire,
    count_tokens_to_wire,
    embed_request_from_wire,
    embed_response_to_wire,
    error_body,
    model_from_path,
    models_to_wire,
    request_from_wire,
    response_to_wire,
)
from llmrelay.providers.gemini.stream import ChatStreamDecoder
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    UsageEvent,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n\xfb\xff").decode()  # has + and / in it
SIG = base64.b64encode(b"signature-bytes").decode()
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
MODEL = "gemini-2.0-flash"


def body(*contents: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"contents": list(contents) or [user({"text": "Hi"})], **fields}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def model(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def fcall(name: str = "weather", call_id: str | None = None, **args: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "args": args}
    if call_id:
        function["id"] = call_id
    return {"functionCall": function}


def fresult(name: str = "weather", response: Any = None, call_id: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "response": {"result": "sunny"} if response is None else response}
    if call_id:
        function["id"] = call_id
    return {"functionResponse": function}


def parse(wire: dict[str, Any]) -> ChatRequest:
    return request_from_wire(json.loads(json.dumps(wire)), MODEL)


def answer(**kw: Any) -> ChatResponse:
    fields: dict[str, Any] = {
        "content": "Hello!", "finish_reason": "stop", "model": "gpt-4o-mini", "provider": "openai",
        "usage": Usage(20, 12, cached_tokens=8, reasoning_tokens=4), "id": "resp-1",
    }  # fmt: skip
    fields.update(kw)
    return ChatResponse(**fields)


# --------------------------------------------------------------------------- contents


def test_text_turns_roles_and_system_instruction() -> None:
    request = parse(
        body(
            user({"text": "Hi"}),
            model({"text": "Hello"}, {"text": " there"}),
            {"parts": [{"text": "no role is user"}]},
            systemInstruction={"role": "user", "parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
        )
    )
    assert request.model == MODEL and request.extra == {} and request.tools == [] and request.tool_choice is None
    system, first, reply, last = request.messages
    assert (system.role, system.parts) == ("system", [TextPart("Be brief."), TextPart("Be kind.")])
    assert (first.role, first.content) == ("user", "Hi")
    assert (reply.role, reply.content) == ("assistant", "Hello there")
    assert (last.role, last.content) == ("user", "no role is user")


def test_system_instruction_as_a_string_and_model_prefix() -> None:
    request = request_from_wire(body(systemInstruction="Rules.", model="models/gemini-2.0-flash"), "models/" + MODEL)
    assert request.model == MODEL
    assert [(m.role, m.content) for m in request.messages] == [("system", "Rules."), ("user", "Hi")]


def test_images_inline_and_by_url_in_either_spelling() -> None:
    url_safe = PNG.replace("+", "-").replace("/", "_").rstrip("=")
    request = parse(
        body(
            user(
                {"text": "Look:"},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"inline_data": {"mime_type": "image/png", "data": url_safe}},  # what the SDK sends
                {"fileData": {"fileUri": "https://example.com/cat.webp", "mimeType": "image/webp"}},
                {"file_data": {"file_uri": "https://example.com/dog.png"}},
            )
        )
    )
    text, inline, snake, url, guessed = request.messages[0].parts
    assert text == TextPart("Look:")
    assert inline == ImagePart(data=PNG, media_type="image/png")
    assert snake == ImagePart(data=PNG, media_type="image/png")  # URL-safe base64 made standard
    assert url == ImagePart(url="https://example.com/cat.webp", media_type="image/webp")
    assert guessed == ImagePart(url="https://example.com/dog.png")


def test_function_calls_without_ids_pair_by_name_and_order() -> None:
    request = parse(
        body(
            user({"text": "Weather in Paris and Rome, and the time?"}),
            model({"text": "Checking."}, fcall(city="Paris"), fcall(city="Rome"), fcall("clock")),
            user(
                fresult(response={"result": "18C"}), fresult("clock", {"time": "noon"}), fresult(), {"text": "Thanks"}
            ),
        )
    )
    _, turn, paris, clock, rome, thanks = request.messages
    assert turn.text == "Checking."
    assert [(c.id, c.name, c.arguments, c.raw_arguments, c.extra) for c in turn.tool_calls] == [
        ("call_1_1", "weather", {"city": "Paris"}, '{"city":"Paris"}', {}),
        ("call_1_2", "weather", {"city": "Rome"}, '{"city":"Rome"}', {}),
        ("call_1_3", "clock", {}, "{}", {}),
    ]
    assert (paris.role, paris.tool_call_id, paris.name, paris.content) == ("tool", "call_1_1", "weather", "18C")
    assert (clock.tool_call_id, clock.content) == ("call_1_3", '{"time":"noon"}')
    assert (rome.tool_call_id, rome.content) == ("call_1_2", "sunny")
    assert (thanks.role, thanks.content) == ("user", "Thanks")  # a turn's own parts follow its tool results


def test_function_call_ids_signatures_and_out_of_order_results() -> None:
    request = parse(
        body(
            user({"text": "Go"}),
            model({**fcall(call_id="a1", city="Paris"), "thoughtSignature": SIG}, fcall(call_id="a2", city="Rome")),
            user(fresult(response={"result": "21C"}, call_id="a2"), fresult(response={"result": "18C"}, call_id="a1")),
            model(fcall(call_id="a1", city="Oslo")),  # a repeated id stays unique in the conversation
            user(fresult(call_id="a1")),
        )
    )
    _, turn, rome, paris, again, oslo = request.messages
    first, second = turn.tool_calls
    assert (first.id, first.extra) == ("a1", {CALL_ID: "a1", SIGNATURE: SIG})
    assert (second.id, second.extra) == ("a2", {CALL_ID: "a2"})
    assert (rome.tool_call_id, rome.content, paris.tool_call_id, paris.content) == ("a2", "21C", "a1", "18C")
    assert (again.tool_calls[0].id, again.tool_calls[0].extra, oslo.tool_call_id) == ("a1_", {CALL_ID: "a1"}, "a1_")


def test_thoughts_become_reasoning_and_signatures_are_kept() -> None:
    request = parse(
        body(
            user({"text": "Why?"}),
            model({"text": "Let me think", "thought": True}, {"text": "Because.", "thoughtSignature": SIG}),
            user({"text": "And?"}),
            model({"text": "So."}, {"thoughtSignature": "c2ln"}),  # a signature in a part of its own
        )
    )
    reply, later = request.messages[1], request.messages[3]
    assert (reply.content, reply.reasoning, reply.reasoning_signature) == ("Because.", "Let me think", SIG)
    assert (later.content, later.reasoning, later.reasoning_signature) == ("So.", None, "c2ln")


def test_model_turn_with_an_image_keeps_its_parts() -> None:
    request = parse(
        body(user({"text": "Draw"}), model({"text": "Here:"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}))
    )
    assert request.messages[1].parts == [TextPart("Here:"), ImagePart(data=PNG, media_type="image/png")]


# --------------------------------------------------------------------------- tools


def test_function_declarations_in_every_form() -> None:
    openapi = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "Where", "example": "Paris"},
            "days": {"type": "INTEGER", "nullable": True, "minimum": 1, "format": "int32"},
            "units": {"type": "STRING", "format": "enum", "enum": ["C", "F"]},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "min_items": "1", "maxItems": 3},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}], "nullable": True},
        },
        "required": ["city"],
        "propertyOrdering": ["city", "days", "units", "tags", "either"],
    }
    request = parse(
        body(
            tools=[
                {"functionDeclarations": [{"name": "weather", "description": "Weather.", "parameters": openapi}]},
                {"function_declarations": [{"name": "clock", "parameters_json_schema": WEATHER}, {"name": "ping"}]},
            ]
        )
    )
    weather, clock, ping = request.tools
    assert weather == ToolSpec(
        "weather",
        "Weather.",
        {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "Where", "examples": ["Paris"]},
                "days": {"type": ["integer", "null"], "minimum": 1, "format": "int32"},
                "units": {"type": "string", "enum": ["C", "F"]},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                "either": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
            },
            "required": ["city"],
        },
    )
    assert clock == ToolSpec("clock", "", WEATHER)
    assert ping == ToolSpec("ping")


TWO_TOOLS = [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "OBJECT"}}, {"name": "clock"}]}]


@pytest.mark.parametrize(
    ("config", "choice", "offered"),
    [
        ({"mode": "AUTO"}, "auto", ["weather", "clock"]),
        ({"mode": "VALIDATED"}, "auto", ["weather", "clock"]),
        ({"mode": "any"}, "required", ["weather", "clock"]),
        ({"mode": "NONE"}, "none", ["weather", "clock"]),
        ({"mode": "MODE_UNSPECIFIED"}, None, ["weather", "clock"]),
        ({"mode": "ANY", "allowedFunctionNames": ["clock"]}, {"name": "clock"}, ["weather", "clock"]),
        ({"mode": "ANY", "allowed_function_names": ["clock", "weather"]}, "required", ["weather", "clock"]),
        ({"mode": "ANY", "allowedFunctionNames": ["weather", "weather"]}, {"name": "weather"}, ["weather", "clock"]),
        ({"mode": "VALIDATED", "allowedFunctionNames": ["clock"]}, "auto", ["clock"]),
        ({}, None, ["weather", "clock"]),
    ],
)
def test_function_calling_config(config: dict[str, Any], choice: Any, offered: list[str]) -> None:
    request = parse(body(tools=TWO_TOOLS, toolConfig={"functionCallingConfig": config}))
    assert request.tool_choice == choice and [t.name for t in request.tools] == offered


def test_tool_config_without_tools_sets_no_choice_and_other_fields_pass() -> None:
    request = parse(
        body(toolConfig={"functionCallingConfig": {"mode": "NONE"}, "retrievalConfig": {"languageCode": "fr"}})
    )
    assert request.tool_choice is None and request.extra == {"toolConfig": {"retrievalConfig": {"languageCode": "fr"}}}


# --------------------------------------------------------------------------- generationConfig and the rest


def test_generation_config_fields() -> None:
    request = parse(
        body(
            generationConfig={
                "temperature": 0.5, "topP": 0.9, "topK": 40.0, "maxOutputTokens": 100, "stopSequences": ["END"],
                "seed": 7, "candidateCount": 1, "responseModalities": ["TEXT"], "presencePenalty": 0.2,
                "thinkingConfig": {"thinking_budget": 1024, "include_thoughts": True, "thinkingLevel": "low"},
            },
            safetySettings=[{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
            serviceTier="flex",
            store=False,
        )
    )  # fmt: skip
    assert (request.temperature, request.top_p, request.max_tokens, request.stop, request.seed) == (
        0.5, 0.9, 100, ["END"], 7,
    )  # fmt: skip
    assert request.response_format is None
    assert request.extra == {
        "generationConfig": {
            "presencePenalty": 0.2,
            "topK": 40,
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024, "thinkingLevel": "LOW"},
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "serviceTier": "flex",
        "store": False,
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"responseMimeType": "text/plain"}, None),
        ({"responseMimeType": "application/json"}, ResponseFormat("json_object")),
        (
            {"responseMimeType": "application/json", "responseJsonSchema": {**WEATHER, "title": "The weather!"}},
            ResponseFormat("json_schema", {**WEATHER, "title": "The weather!"}, "The_weather_", strict=False),
        ),
        (
            {
                "response_mime_type": "application/json",
                "response_schema": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
            },
            ResponseFormat("json_schema", WEATHER, "response", strict=False),
        ),
    ],
)
def test_response_formats(config: dict[str, Any], expected: ResponseFormat | None) -> None:
    assert parse(body(generationConfig=config)).response_format == expected


def test_count_tokens_takes_contents_or_a_whole_request() -> None:
    plain = count_tokens_request_from_wire({"contents": [user({"text": "Hi"})]}, MODEL)
    assert [m.content for m in plain.messages] == ["Hi"]
    whole = count_tokens_request_from_wire(
        {"generateContentRequest": {"model": "models/" + MODEL, **body(systemInstruction="Rules.")}}, MODEL
    )
    assert [m.content for m in whole.messages] == ["Rules.", "Hi"]


def test_model_from_path() -> None:
    assert model_from_path("gemini-2.0-flash:generateContent") == (MODEL, "generateContent")
    assert model_from_path("models/gemini-2.0-flash:streamGenerateContent") == (MODEL, "streamGenerateContent")
    assert model_from_path("llama3:8b:countTokens") == ("llama3:8b", "countTokens")
    assert model_from_path("openai/gpt-4o:batchEmbedContents") == ("openai/gpt-4o", "batchEmbedContents")
    with pytest.raises(errors.NotFound, match="'predict' is not served"):
        model_from_path("gemini-2.0-flash:predict")
    with pytest.raises(errors.NotFound, match="names no method"):
        model_from_path("gemini-2.0-flash")
    with pytest.raises(errors.InvalidRequest, match="model: must name a model"):
        model_from_path("models/:generateContent")


def test_embedding_requests() -> None:
    single = embed_request_from_wire(
        {
            "model": "models/text-embedding-004",
            "content": {"parts": [{"text": "a"}, {"text": "b"}]},
            "taskType": "retrieval_document",
            "title": "Doc",
            "outputDimensionality": 64,
        },
        "text-embedding-004",
    )
    assert (single.model, single.inputs, single.dimensions) == ("text-embedding-004", ["a\nb"], 64)
    assert single.extra == {"taskType": "RETRIEVAL_DOCUMENT", "title": "Doc"}
    config = {"taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8, "autoTruncate": True}
    batch = batch_embed_request_from_wire(
        {"requests": [{"content": {"parts": [{"text": t}]}, "embedContentConfig": config} for t in "xy"]}, "emb"
    )
    assert (batch.model, batch.inputs, batch.dimensions) == ("emb", ["x", "y"], 8)
    assert batch.extra == {"taskType": "RETRIEVAL_QUERY", "embedContentConfig": {"autoTruncate": True}}


# --------------------------------------------------------------------------- refusals, each naming its field

BAD_PART = "contents[0].parts[0]"


def _bad_requests() -> Iterator[tuple[str, Any, str]]:
    """(test id, request body, what the message must say: the path and the problem)."""
    called = model(fcall())
    yield "not-object", [], "the request body must be a JSON object"
    yield "no-contents", {}, "contents: Field required"
    yield "contents-empty", {"contents": []}, "contents: must not be empty"
    yield "contents-string", {"contents": "Hi"}, "contents: must be a list, not a string"
    yield "content-string", {"contents": ["Hi"]}, "contents[0]: must be a Content object"
    yield "role", body({"role": "assistant", "parts": [{"text": "x"}]}), "contents[0].role: must be 'user' or 'model'"
    yield "role-type", body({"role": 1, "parts": []}), "contents[0].role: must be a string"
    yield "no-parts", body({"role": "user"}), "contents[0].parts: Field required"
    yield "parts-empty", body(user()), "contents[0].parts: must not be empty"
    yield "part-string", body({"role": "user", "parts": ["x"]}), f"{BAD_PART}: must be a Part object"
    yield "part-empty", body(user({})), f"{BAD_PART}: must have one of text, inlineData"
    yield "part-two", body(user({"text": "a", "fileData": {}})), f"{BAD_PART}: must have one data field, not 2"
    yield "text-type", body(user({"text": 5})), f"{BAD_PART}.text: must be a string, not a number"
    yield "blob-type", body(user({"inlineData": "x"})), f"{BAD_PART}.inlineData: must be a Blob object"
    yield "blob-mime", body(user({"inlineData": {"data": PNG}})), f"{BAD_PART}.inlineData.mimeType: Field required"
    yield (
        "blob-data",
        body(user({"inlineData": {"mimeType": "image/png"}})),
        f"{BAD_PART}.inlineData.data: Field required",
    )
    yield (
        "blob-base64",
        body(user({"text": "a"}), model({"inlineData": {"mimeType": "image/png", "data": "no!"}})),
        "contents[1].parts[0].inlineData.data: is not valid base64",
    )
    yield (
        "blob-pdf",
        body(user({"inlineData": {"mimeType": "application/pdf", "data": PNG}})),
        f"{BAD_PART}.inlineData.mimeType: 'application/pdf' is not supported",
    )
    yield (
        "blob-audio-snake",
        body(user({"inline_data": {"mime_type": "audio/wav", "data": PNG}})),
        f"{BAD_PART}.inline_data.mime_type: 'audio/wav' is not supported",
    )
    yield (
        "file-uri",
        body(user({"fileData": {"mimeType": "image/png"}})),
        f"{BAD_PART}.fileData.fileUri: Field required",
    )
    yield (
        "files-api",
        body(user({"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}})),
        f"{BAD_PART}.fileData.fileUri: Gemini Files API files are not reachable",
    )
    yield (
        "file-video",
        body(user({"fileData": {"fileUri": "https://example.com/a", "mimeType": "video/mp4"}})),
        f"{BAD_PART}.fileData.mimeType: 'video/mp4' is not supported",
    )
    yield (
        "file-pdf-guessed",
        body(user({"fileData": {"fileUri": "https://example.com/a.pdf"}})),
        f"{BAD_PART}.fileData.fileUri: 'application/pdf' is not supported",
    )
    yield "file-ftp", body(user({"fileData": {"fileUri": "ftp://example.com/a.png"}})), f"{BAD_PART}.fileData.fileUri"
    yield "code", body(model({"executableCode": {"code": "1"}})), f"{BAD_PART}.executableCode: code execution"
    yield "code-result", body(user({"codeExecutionResult": {}})), f"{BAD_PART}.codeExecutionResult"
    yield "call-in-user", body(user(fcall())), f"{BAD_PART}.functionCall: function calls belong in 'model' turns"
    yield "result-in-model", body(model(fresult())), f"{BAD_PART}.functionResponse: function responses belong in 'user'"
    yield "call-type", body(model({"functionCall": []})), f"{BAD_PART}.functionCall: must be a FunctionCall object"
    yield "call-name", body(model({"functionCall": {"args": {}}})), f"{BAD_PART}.functionCall.name: Field required"
    yield "call-name-empty", body(model({"functionCall": {"name": ""}})), f"{BAD_PART}.functionCall.name: must not be"
    yield "call-args", body(model({"functionCall": {"name": "f", "args": "{}"}})), f"{BAD_PART}.functionCall.args: must"
    yield "call-id", body(model({"functionCall": {"name": "f", "id": 3}})), f"{BAD_PART}.functionCall.id: must be a s"
    yield (
        "call-signature",
        body(model({**fcall(), "thoughtSignature": 1})),
        f"{BAD_PART}.thoughtSignature: must be a string",
    )
    yield "thought-type", body(model({"text": "x", "thought": "yes"})), f"{BAD_PART}.thought: must be true or false"
    yield (
        "result-type",
        body(called, user({"functionResponse": "x"})),
        "contents[1].parts[0].functionResponse: must be a FunctionResponse",
    )
    yield (
        "result-response",
        body(called, user({"functionResponse": {"name": "weather"}})),
        "contents[1].parts[0].functionResponse.response: Field required",
    )
    yield (
        "result-response-type",
        body(called, user({"functionResponse": {"name": "weather", "response": "sunny"}})),
        "contents[1].parts[0].functionResponse.response: must be an object",
    )
    yield (
        "result-unpaired",
        body(called, user(fresult("clock"))),
        "contents[1].parts[0].functionResponse: answers no earlier functionCall named 'clock'",
    )
    yield (
        "result-answered-twice",
        body(called, user(fresult(), fresult())),
        "contents[1].parts[1].functionResponse: answers no earlier functionCall named 'weather'",
    )
    yield (
        "result-parts",
        body(called, user({"functionResponse": {"name": "weather", "response": {}, "parts": [{"text": "x"}]}})),
        "contents[1].parts[0].functionResponse.parts: multimodal function responses",
    )
    yield "system-type", body(systemInstruction=3), "systemInstruction: must be a Content object or a string"
    yield "system-parts", body(systemInstruction={"role": "user"}), "systemInstruction.parts: Field required"
    yield (
        "system-image",
        body(systemInstruction={"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}),
        "systemInstruction.parts[0]: system instructions take text parts only",
    )
    yield "tools-type", body(tools={}), "tools: must be a list"
    yield "tool-type", body(tools=["f"]), "tools[0]: must be a Tool object"
    for builtin in ("googleSearch", "codeExecution", "urlContext", "googleSearchRetrieval", "google_search"):
        yield builtin, body(tools=[{builtin: {}}]), f"tools[0].{builtin}: built-in Gemini tools are not supported"
    yield "declarations-type", body(tools=[{"functionDeclarations": {}}]), "tools[0].functionDeclarations: must be a l"
    yield (
        "declaration-type",
        body(tools=[{"functionDeclarations": ["f"]}]),
        "tools[0].functionDeclarations[0]: must be a FunctionDeclaration",
    )
    yield (
        "declaration-name",
        body(tools=[{"functionDeclarations": [{"description": "x"}]}]),
        "tools[0].functionDeclarations[0].name: Field required",
    )
    yield (
        "declaration-both",
        body(tools=[{"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}]),
        "tools[0].functionDeclarations[0]: give either parameters or parametersJsonSchema",
    )
    yield (
        "declaration-json-schema",
        body(tools=[{"functionDeclarations": [{"name": "f", "parametersJsonSchema": "{}"}]}]),
        "tools[0].functionDeclarations[0].parametersJsonSchema: must be a JSON schema object",
    )
    yield (
        "schema-type",
        body(
            tools=[
                {
                    "functionDeclarations": [
                        {"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "TEXT"}}}}
                    ]
                }
            ]
        ),
        "tools[0].functionDeclarations[0].parameters.properties.a.type: must be one of",
    )
    yield (
        "schema-field",
        body(
            tools=[
                {
                    "functionDeclarations": [
                        {"name": "f", "parameters": {"type": "OBJECT", "additionalProperties": False}}
                    ]
                }
            ]
        ),
        "tools[0].functionDeclarations[0].parameters.additionalProperties: is not a field of Gemini's Schema",
    )
    yield (
        "duplicate-function",
        body(tools=[{"functionDeclarations": [{"name": "f"}]}, {"functionDeclarations": [{"name": "f"}]}]),
        "tools: function 'f' is declared more than once",
    )
    yield "tool-config-type", body(toolConfig=[]), "toolConfig: must be an object"
    yield (
        "calling-config-type",
        body(tools=TWO_TOOLS, toolConfig={"functionCallingConfig": "ANY"}),
        "toolConfig.functionCallingConfig: must be an object",
    )
    yield (
        "mode",
        body(tools=TWO_TOOLS, toolConfig={"functionCallingConfig": {"mode": "ALWAYS"}}),
        "toolConfig.functionCallingConfig.mode: must be AUTO, ANY, NONE or VALIDATED",
    )
    yield (
        "mode-type",
        body(tools=TWO_TOOLS, toolConfig={"function_calling_config": {"mode": 1}}),
        "toolConfig.function_calling_config.mode: must be a string",
    )
    yield (
        "allowed-unknown",
        body(tools=TWO_TOOLS, toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}),
        "toolConfig.functionCallingConfig.allowedFunctionNames[0]: 'nope' is not a declared function",
    )
    yield (
        "allowed-type",
        body(tools=TWO_TOOLS, toolConfig={"functionCallingConfig": {"allowedFunctionNames": "clock"}}),
        "toolConfig.functionCallingConfig.allowedFunctionNames: must be a list",
    )
    config = "generationConfig"
    yield "config-type", body(generationConfig=[]), "generationConfig: must be an object"
    for field, value, problem in [
        ("temperature", "hot", "must be a number from 0 to 2"),
        ("temperature", 3, "must be a number from 0 to 2"),
        ("topP", 1.5, "must be a number from 0 to 1"),
        ("topK", 0, "must be at least 1"),
        ("topK", 1.5, "must be an integer"),
        ("maxOutputTokens", 0, "must be at least 1"),
        ("max_output_tokens", "10", "must be an integer"),
        ("seed", True, "must be an integer"),
        ("stopSequences", "END", "must be a list of strings"),
        ("stopSequences", [1], "must be a list of strings"),
        ("candidateCount", 2, "must be 1, not 2"),
        ("responseModalities", ["TEXT", "IMAGE"], "only TEXT is supported"),
        ("responseMimeType", "text/x.enum", "'text/x.enum' is not supported"),
        ("responseMimeType", 1, "must be a string"),
        ("responseJsonSchema", WEATHER, "must be 'application/json' with a response schema"),
    ]:
        path = f"{config}.{'responseMimeType' if field == 'responseJsonSchema' else field}"
        yield f"{field}-{value!r}", body(generationConfig={field: value}), f"{path}: {problem}"
    json_mime = {"responseMimeType": "application/json"}
    yield (
        "schemas-both",
        body(generationConfig={**json_mime, "responseSchema": {}, "responseJsonSchema": {}}),
        "generationConfig: give either responseSchema or responseJsonSchema",
    )
    yield (
        "json-schema-type",
        body(generationConfig={**json_mime, "responseJsonSchema": []}),
        "generationConfig.responseJsonSchema: must be a JSON schema object",
    )
    yield (
        "schema-count",
        body(generationConfig={**json_mime, "responseSchema": {"type": "ARRAY", "minItems": -1}}),
        "generationConfig.responseSchema.minItems: must be a non-negative integer",
    )
    yield (
        "schema-items",
        body(generationConfig={**json_mime, "responseSchema": {"type": "ARRAY", "items": "STRING"}}),
        "generationConfig.responseSchema.items: must be a Schema object",
    )
    yield "thinking-type", body(generationConfig={"thinkingConfig": 1}), "generationConfig.thinkingConfig: must be an o"
    yield (
        "thinking-budget",
        body(generationConfig={"thinkingConfig": {"thinkingBudget": -2}}),
        "generationConfig.thinkingConfig.thinkingBudget: must be at least -1",
    )
    yield (
        "thinking-include",
        body(generationConfig={"thinking_config": {"include_thoughts": "yes"}}),
        "generationConfig.thinking_config.include_thoughts: must be true or false",
    )
    yield (
        "thinking-level",
        body(generationConfig={"thinkingConfig": {"thinkingLevel": "EXTREME"}}),
        "generationConfig.thinkingConfig.thinkingLevel: must be MINIMAL, LOW, MEDIUM or HIGH",
    )
    yield "safety-type", body(safetySettings={}), "safetySettings: must be a list"
    yield "safety-item", body(safetySettings=["BLOCK_NONE"]), "safetySettings[0]: must be an object"
    yield "cached", body(cachedContent="cachedContents/abc"), "cachedContent: cached contents live at Google"
    yield "tier", body(serviceTier="priority"), "serviceTier: 'priority' is billed at other rates"
    yield "tier-type", body(serviceTier=1), "serviceTier: must be a string"
    yield "model-mismatch", body(model="models/gemini-pro"), "model: 'models/gemini-pro' is not the model of the URL"


@pytest.mark.parametrize(("wire", "message"), [pytest.param(w, m, id=i) for i, w, m in _bad_requests()])
def test_bad_requests_name_the_field(wire: Any, message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        request_from_wire(copy.deepcopy(wire), MODEL)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: count_tokens_request_from_wire({}, MODEL), "contents: Field required"),
        (lambda: count_tokens_request_from_wire("x", MODEL), "the request body must be a JSON object"),
        (
            lambda: count_tokens_request_from_wire({"contents": [], "generateContentRequest": {}}, MODEL),
            "generateContentRequest: give either contents or generateContentRequest",
        ),
        (
            lambda: count_tokens_request_from_wire({"generateContentRequest": {"contents": [{"parts": [5]}]}}, MODEL),
            "generateContentRequest.contents[0].parts[0]: must be a Part object",
        ),
        (lambda: embed_request_from_wire({}, "emb"), "content: Field required"),
        (lambda: embed_request_from_wire({"content": {}}, "emb"), "content.parts: Field required"),
        (
            lambda: embed_request_from_wire(
                {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}}, "emb"
            ),
            "content.parts[0]: must be a text part",
        ),
        (lambda: embed_request_from_wire({"content": {"parts": []}}, "emb"), "content.parts: must not be empty"),
        (
            lambda: embed_request_from_wire({"content": {"parts": [{"text": "a"}]}, "taskType": "SEARCH"}, "emb"),
            "taskType: must be one of",
        ),
        (
            lambda: embed_request_from_wire({"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 0}, "emb"),
            "outputDimensionality: must be at least 1",
        ),
        (
            lambda: embed_request_from_wire(
                {"content": {"parts": [{"text": "a"}]}, "embedContentConfig": {"outputDimensionality": "8"}}, "emb"
            ),
            "embedContentConfig.outputDimensionality: must be an integer",
        ),
        (lambda: batch_embed_request_from_wire({}, "emb"), "requests: Field required"),
        (lambda: batch_embed_request_from_wire({"requests": []}, "emb"), "requests: must not be empty"),
        (lambda: batch_embed_request_from_wire({"requests": ["a"]}, "emb"), "requests[0]: must be an EmbedContentReq"),
        (
            lambda: batch_embed_request_from_wire(
                {"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]}, "emb"
            ),
            "requests[0].model: 'models/other' is not the model of the URL ('emb')",
        ),
        (
            lambda: batch_embed_request_from_wire(
                {
                    "requests": [
                        {"content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY"},
                        {"content": {"parts": [{"text": "b"}]}, "taskType": "CLUSTERING"},
                    ]
                },
                "emb",
            ),
            "requests[1]: taskType, title and outputDimensionality must be the same in every request",
        ),
    ],
)
def test_bad_count_and_embedding_requests_name_the_field(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        call()
    assert message in caught.value.message


# --------------------------------------------------------------------------- answers, as the SDK parses them


def sdk_response(wire: dict[str, Any]) -> gtypes.GenerateContentResponse:
    """Strict: ``model_validate`` refuses any field the SDK does not know."""
    return gtypes.GenerateContentResponse.model_validate(json.loads(json.dumps(wire)))


def test_text_answer() -> None:
    wire = response_to_wire(answer())
    parsed = sdk_response(wire)
    assert parsed.text == "Hello!" and parsed.response_id == "resp-1" and parsed.model_version == "gpt-4o-mini"
    assert parsed.candidates[0].finish_reason == gtypes.FinishReason.STOP and parsed.candidates[0].index == 0
    usage = parsed.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (20, 8, 4)
    assert (usage.cached_content_token_count, usage.total_token_count) == (8, 32)


def test_function_call_answer() -> None:
    calls = [
        ToolCall("call_0", "weather", {"city": "Paris"}),  # an id the Gemini decoder made up: not sent
        ToolCall("toolu_1", "weather", raw_arguments='{"city":"Rome"}', extra={SIGNATURE: SIG}),
        ToolCall("x", "clock", extra={CALL_ID: "gem-9"}),
    ]
    wire = response_to_wire(answer(content="", finish_reason="tool_calls", tool_calls=calls))
    parsed = sdk_response(wire)
    assert [(c.id, c.name, c.args) for c in parsed.function_calls] == [
        (None, "weather", {"city": "Paris"}),
        ("toolu_1", "weather", {"city": "Rome"}),
        ("gem-9", "clock", {}),
    ]
    assert parsed.candidates[0].content.parts[1].thought_signature == b"signature-bytes"
    assert parsed.candidates[0].finish_reason == gtypes.FinishReason.STOP


def test_thought_answer() -> None:
    wire = response_to_wire(answer(reasoning="Hmm.", reasoning_signature=SIG))
    parts = sdk_response(wire).candidates[0].content.parts
    assert [(p.text, p.thought, p.thought_signature) for p in parts] == [
        ("Hmm.", True, None),
        ("Hello!", None, b"signature-bytes"),
    ]
    assert sdk_response(wire).text == "Hello!"  # thoughts are not the answer's text


def test_a_signature_that_is_not_base64_is_left_out() -> None:
    wire = response_to_wire(
        answer(reasoning_signature="not base64!", tool_calls=[ToolCall("t", "f", extra={SIGNATURE: "?"})])
    )
    assert "thoughtSignature" not in json.dumps(wire)
    sdk_response(wire)


@pytest.mark.parametrize(
    ("reason", "native", "expected"),
    [
        ("length", None, "MAX_TOKENS"),
        ("content_filter", None, "SAFETY"),
        ("content_filter", "RECITATION", "RECITATION"),  # Gemini's own reason, kept
        ("error", None, "OTHER"),
        ("stop", "end_turn", "STOP"),  # another provider's reason: mapped
        ("length", "STOP", "MAX_TOKENS"),  # a native reason that says otherwise: mapped
    ],
)
def test_finish_reasons(reason: Any, native: str | None, expected: str) -> None:
    wire = response_to_wire(answer(finish_reason=reason, native_finish_reason=native))
    assert sdk_response(wire).candidates[0].finish_reason == gtypes.FinishReason(expected)


def test_max_tokens_answer_and_refusal() -> None:
    parsed = sdk_response(response_to_wire(answer(content="Once upon", finish_reason="length")))
    assert parsed.text == "Once upon" and parsed.candidates[0].finish_reason == gtypes.FinishReason.MAX_TOKENS
    refused = sdk_response(response_to_wire(answer(content="", refusal="I can't.", finish_reason="content_filter")))
    assert refused.text == "I can't."


def stream_events() -> list[StreamEvent]:
    final = answer(
        content="Hello there",
        reasoning="Hmm",
        tool_calls=[ToolCall("toolu_1", "weather", {"city": "Paris"}, extra={SIGNATURE: SIG})],
        finish_reason="tool_calls",
        usage=Usage(10, 7, reasoning_tokens=2),
    )
    return [
        ReasoningDelta("Hmm"),
        ReasoningDelta(signature=SIG[:8]),
        ReasoningDelta(signature=SIG[8:]),
        TextDelta("Hello"),
        TextDelta(" there"),
        TextDelta(""),
        ToolCallDelta(0, id="toolu_1", name="weather", extra={SIGNATURE: SIG}),
        ToolCallDelta(0, arguments='{"ci'),
        ToolCallDelta(0, arguments='ty": "Paris"}'),
        UsageEvent(Usage(10, 7, reasoning_tokens=2)),
        Finish("tool_calls", final),
    ]


def encode_stream(events: list[StreamEvent], model_name: str = MODEL) -> bytes:
    encoder = StreamEncoder(model_name)
    return encoder.start() + b"".join(encoder.feed(e) for e in events) + encoder.end()


def test_stream_chunks_are_google_frames_the_sdk_parses() -> None:
    raw = encode_stream(stream_events())
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b"" and all(f.startswith(b"data: {") for f in frames[:-1])
    chunks = [sdk_response(json.loads(f[6:])) for f in frames[:-1]]
    assert [c.candidates[0].content.parts[0].text for c in chunks[:3]] == ["Hmm", "Hello", " there"]
    assert chunks[0].candidates[0].content.parts[0].thought is True
    last = chunks[-1]
    assert len(chunks) == 4 and len({c.response_id for c in chunks}) == 1
    assert last.candidates[0].content.parts[0].thought_signature == b"signature-bytes"
    assert [(c.name, c.args) for c in last.function_calls] == [("weather", {"city": "Paris"})]
    assert last.candidates[0].content.parts[1].thought_signature == b"signature-bytes"
    assert last.candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.thoughts_token_count) == (10, 2)
    assert all(c.usage_metadata is None for c in chunks[:-1])


def test_stream_error_chunk_is_an_sdk_error_object() -> None:
    raw = StreamEncoder(MODEL).error(errors.RateLimited("slow down", provider="openai"))
    assert raw.startswith(b'data: {"error":') and raw.endswith(b"\r\n\r\n")
    assert json.loads(raw[6:]) == {
        "error": {"code": 429, "message": "openai: slow down", "status": "RESOURCE_EXHAUSTED"}
    }
    assert (
        StreamEncoder(MODEL).error(errors.LLMError("boom"))[6:-4]
        == json.dumps({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}, separators=(",", ":")).encode()
    )


def test_count_tokens_embeddings_and_models_wire() -> None:
    assert gtypes.CountTokensResponse.model_validate(count_tokens_to_wire(42)).total_tokens == 42
    vectors = EmbeddingResponse([[0.5, 1.0], [2.0, -1.0]], Usage(7), "emb", "openai")
    one = embed_response_to_wire(EmbeddingResponse([[0.5, 1.0]], Usage(3), "emb", "openai"))
    assert one == {"embedding": {"values": [0.5, 1.0]}, "usageMetadata": {"promptTokenCount": 3}}
    assert gtypes.ContentEmbedding.model_validate(one["embedding"]).values == [0.5, 1.0]
    many = batch_embed_response_to_wire(vectors)
    back = codec.decode_embed(json.loads(json.dumps(many)), provider="gemini", model="emb")
    assert (back.vectors, back.usage) == ([[0.5, 1.0], [2.0, -1.0]], Usage(7))
    listed = models_to_wire(["gemini-2.0-flash", "models/emb"], embedding={"models/emb"})
    assert listed["models"][1] == {
        "name": "models/emb", "baseModelId": "emb", "displayName": "emb",
        "supportedGenerationMethods": ["embedContent", "batchEmbedContents"],
    }  # fmt: skip
    assert [m.id for m in codec.decode_models(listed, provider="gemini")] == ["gemini-2.0-flash", "emb"]


# --------------------------------------------------------------------------- the SDK end to end


def _httpx() -> Any:
    """The HTTP library the installed SDK is built on (httpx2 in 3.x, httpx before)."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("google-genai has neither httpx2 nor httpx")


class FakeGateway:
    """The gateway's Gemini routes, in-process: the SDK's requests go through this
    module's functions; ``answer`` plays the router and any provider behind it."""

    def __init__(self, answer: Callable[[ChatRequest], ChatResponse], events: list[StreamEvent] | None = None) -> None:
        self.answer = answer
        self.events = events
        self.requests: list[Any] = []
        self.status: tuple[int, str] | None = None
        http = _httpx()
        self.client = genai.Client(
            api_key="k",
            http_options=gtypes.HttpOptions(
                base_url="http://gateway",
                api_version="v1beta",
                httpx_client=http.Client(transport=http.MockTransport(self)),
            ),
        )

    def __call__(self, request: Any) -> Any:
        http = _httpx()
        if self.status is not None:
            return http.Response(self.status[0], json=error_body(*self.status))
        path = request.url.path.removeprefix("/v1beta/")
        if path == "models":
            return http.Response(200, json=models_to_wire([MODEL, "emb"], embedding={"emb"}))
        name, method = model_from_path(path)
        wire = json.loads(request.content)
        if method in ("generateContent", "streamGenerateContent"):
            canonical = request_from_wire(wire, name)
            self.requests.append(canonical)
            if method == "generateContent":
                return http.Response(200, json=response_to_wire(self.answer(canonical)))
            raw = encode_stream(self.events or [], name)
            pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # framing split anywhere
            return http.Response(200, content=iter(pieces), headers={"content-type": "text/event-stream"})
        if method == "countTokens":
            self.requests.append(count_tokens_request_from_wire(wire, name))
            return http.Response(200, json=count_tokens_to_wire(5))
        embed = batch_embed_request_from_wire(wire, name)
        self.requests.append(embed)
        vectors = [[float(len(t)), 0.5] for t in embed.inputs]
        return http.Response(200, json=batch_embed_response_to_wire(EmbeddingResponse(vectors, Usage(4), name, "x")))


def test_sdk_generate_content_with_tools_and_automatic_function_calling() -> None:
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    def answer_of(request: ChatRequest) -> ChatResponse:
        if request.messages[-1].role != "tool":
            call = ToolCall("call_abc", "weather", {"city": "Paris"})
            return answer(content="", tool_calls=[call], finish_reason="tool_calls")
        return answer(content=f"It is {request.messages[-1].text}.")

    gw = FakeGateway(answer_of)
    result = gw.client.models.generate_content(
        model=MODEL,
        contents="Weather in Paris?",
        config=gtypes.GenerateContentConfig(system_instruction="Be brief.", tools=[weather], temperature=0.2, top_k=5),
    )
    assert result.text == "It is sunny in Paris."
    first, second = gw.requests
    assert [t.name for t in first.tools] == ["weather"] and first.temperature == 0.2
    assert first.tools[0].parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    assert first.extra == {"generationConfig": {"topK": 5}}
    system, question, turn, result_message = second.messages
    assert (system.content, question.content) == ("Be brief.", "Weather in Paris?")
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [("call_abc", "weather", {"city": "Paris"})]
    assert (result_message.tool_call_id, result_message.content) == ("call_abc", "sunny in Paris")


def test_sdk_stream_with_thoughts_and_a_function_call() -> None:
    gw = FakeGateway(lambda r: answer(), stream_events())
    chunks = list(gw.client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == "Hello there"
    assert [(c.name, c.args) for c in chunks[-1].function_calls] == [("weather", {"city": "Paris"})]
    assert chunks[-1].usage_metadata.total_token_count == 17


def test_sdk_raises_an_in_stream_error_with_its_code_status_and_message() -> None:
    encoder = StreamEncoder(MODEL)
    raw = encoder.feed(TextDelta("Hel")) + encoder.error(errors.Overloaded("busy", status_code=503))
    http = _httpx()
    client = genai.Client(
        api_key="k",
        http_options=gtypes.HttpOptions(
            base_url="http://gw",
            httpx_client=http.Client(transport=http.MockTransport(lambda r: http.Response(200, content=raw))),
        ),
    )
    stream = client.models.generate_content_stream(model=MODEL, contents="Hi")
    assert next(stream).text == "Hel"
    with pytest.raises(genai_errors.ServerError) as caught:
        next(stream)
    assert (caught.value.code, caught.value.status, caught.value.message) == (503, "UNAVAILABLE", "busy")


@pytest.mark.parametrize(
    ("status", "kind", "rpc", "canonical"),
    [
        (400, genai_errors.ClientError, "INVALID_ARGUMENT", errors.InvalidRequest),
        (401, genai_errors.ClientError, "UNAUTHENTICATED", errors.AuthenticationError),
        (403, genai_errors.ClientError, "PERMISSION_DENIED", errors.PermissionDenied),
        (404, genai_errors.ClientError, "NOT_FOUND", errors.NotFound),
        (413, genai_errors.ClientError, "INVALID_ARGUMENT", errors.InvalidRequest),
        (429, genai_errors.ClientError, "RESOURCE_EXHAUSTED", errors.RateLimited),
        (500, genai_errors.ServerError, "INTERNAL", errors.ProviderError),
        (502, genai_errors.ServerError, "INTERNAL", errors.ProviderError),
        (503, genai_errors.ServerError, "UNAVAILABLE", errors.Overloaded),
        (504, genai_errors.ServerError, "DEADLINE_EXCEEDED", errors.Timeout),
    ],
)
def test_error_body_becomes_the_sdk_error(
    status: int, kind: type[Exception], rpc: str, canonical: type[errors.LLMError]
) -> None:
    gw = FakeGateway(lambda r: answer())
    gw.status = (status, "model 'x' is not served here")
    with pytest.raises(kind) as caught:
        gw.client.models.generate_content(model=MODEL, contents="Hi")
    error: Any = caught.value
    assert (error.code, error.status, error.message) == (status, rpc, "model 'x' is not served here")
    # ... and llmrelay's own Gemini provider, pointed at the gateway, reads it as the same error
    mapped = payload_error(error_body(status, "m"), provider="gemini")
    assert type(mapped) is canonical and mapped.status_code == status


def test_sdk_count_tokens_embeddings_and_model_list() -> None:
    gw = FakeGateway(lambda r: answer())
    assert gw.client.models.count_tokens(model=MODEL, contents="Hello there").total_tokens == 5
    embedded = gw.client.models.embed_content(
        model="emb", contents=["a", "bcd"], config={"output_dimensionality": 2, "task_type": "RETRIEVAL_QUERY"}
    )
    assert [e.values for e in embedded.embeddings] == [[1.0, 0.5], [3.0, 0.5]]
    counted, embed = gw.requests
    assert [m.content for m in counted.messages] == ["Hello there"]
    assert (embed.model, embed.inputs, embed.dimensions, embed.extra) == (
        "emb",
        ["a", "bcd"],
        2,
        {"taskType": "RETRIEVAL_QUERY"},
    )
    listed = {m.name: m.supported_actions for m in gw.client.models.list()}
    assert listed == {
        f"models/{MODEL}": ["generateContent", "streamGenerateContent", "countTokens"],
        "models/emb": ["embedContent", "batchEmbedContents"],
    }


# --------------------------------------------------------------------------- round trips through the outbound codec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
texts = st.text(min_size=1, max_size=12)
signatures = st.binary(min_size=1, max_size=9).map(lambda b: base64.b64encode(b).decode())
images = st.one_of(
    signatures.map(lambda data: ImagePart(data=data, media_type="image/png")),
    st.sampled_from(["https://example.com/a.png", "https://example.com/b.jpg", "gs://bucket/c.webp"]).map(
        lambda url: ImagePart(url=url)
    ),
)
tool_texts = texts | arguments.map(json.dumps)


@st.composite
def assistant_turns(draw: st.DrawFn, turn: int) -> list[Message]:
    """An assistant message and one tool message per call it made, in the calls' order
    (without ids, Gemini pairs a call and its response by name and order)."""
    calls = []
    for k in range(draw(st.integers(0, 3))):
        extra: dict[str, Any] = {}
        if draw(st.booleans()):
            extra[CALL_ID] = f"gem-{turn}-{k}"
        if draw(st.booleans()):
            extra[SIGNATURE] = draw(signatures)
        name = draw(st.sampled_from(["f", "g"]))
        calls.append(ToolCall(extra.get(CALL_ID, f"id-{turn}-{k}"), name, draw(arguments), extra=extra))
    content = draw(st.none() | texts) if calls else draw(texts)
    signature = draw(st.none() | signatures) if content else None
    message = Message("assistant", content, tool_calls=calls, reasoning_signature=signature)
    return [message, *(Message("tool", draw(tool_texts), tool_call_id=c.id) for c in calls)]


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    out: list[Message] = []
    if draw(st.booleans()):
        out.append(Message("system", draw(texts)))
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2 == 0:
            parts = draw(st.lists(st.builds(TextPart, texts) | images, min_size=1, max_size=3))
            out.append(Message("user", draw(texts) if draw(st.booleans()) else parts))
        else:
            out.extend(draw(assistant_turns(turn)))
    return out


def shape(messages: list[Message]) -> list[tuple[Any, ...]]:
    """What must survive: roles, parts, calls (names, arguments, Gemini ids and
    signatures), signatures, and which call each tool message answers (by position:
    calls without Gemini ids get new ids). Tool results compare as Gemini's response object."""
    where: dict[str, tuple[int, int]] = {}
    out: list[tuple[Any, ...]] = []
    for i, m in enumerate(messages):
        for k, c in enumerate(m.tool_calls):
            where[c.id] = (i, k)
        calls = [(c.name, c.arguments, c.extra.get(CALL_ID), c.extra.get(SIGNATURE)) for c in m.tool_calls]
        if m.role == "tool":
            parts: Any = codec.tool_response(m.text)
        else:
            parts = [p.text if isinstance(p, TextPart) else p.data_url for p in m.parts]
        out.append((m.role, parts, calls, m.reasoning_signature, where.get(m.tool_call_id or "")))
    return out


def format_of(fmt: ResponseFormat | None) -> Any:
    if fmt is None or fmt.type == "text":
        return None
    return (fmt.type, fmt.schema if fmt.type == "json_schema" else None)


TOOLS = [ToolSpec("f", "Does f.", WEATHER), ToolSpec("g", "", {"type": "object", "properties": {}})]


@settings(max_examples=80, deadline=None)
@given(
    conversations(),
    st.sampled_from([[], TOOLS]),
    st.sampled_from([None, "auto", "none", "required", {"name": "g"}, {"type": "function", "function": {"name": "f"}}]),
    st.sampled_from(
        [None, ResponseFormat("text"), ResponseFormat("json_object"), ResponseFormat("json_schema", schema=WEATHER)]
    ),
    st.none() | st.floats(0, 2),
    st.none() | st.floats(0, 1),
    st.none() | st.integers(1, 10_000),
    st.none() | st.lists(texts, min_size=1, max_size=3),
    st.none() | st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([{}, {"generationConfig": {"topK": 3, "thinkingConfig": {"thinkingBudget": 128}}}]),
)
def test_request_round_trip(
    messages: list[Message],
    tools: list[ToolSpec],
    choice: Any,
    fmt: ResponseFormat | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    stop: list[str] | None,
    seed: int | None,
    extra: dict[str, Any],
) -> None:
    original = ChatRequest(
        MODEL, messages, tools=tools, tool_choice=choice, response_format=fmt, temperature=temperature,
        top_p=top_p, max_tokens=max_tokens, stop=stop, seed=seed, extra=copy.deepcopy(extra),
    )  # fmt: skip
    back = request_from_wire(json.loads(json.dumps(codec.encode_chat(original, stream=False))), MODEL)
    assert shape(back.messages) == shape(messages)
    assert [(t.name, t.description, t.parameters) for t in back.tools] == [
        (t.name, t.description, t.parameters) for t in tools
    ]
    if tools and choice is not None:
        assert codec.calling_config(back.tool_choice) == codec.calling_config(choice)
    else:
        assert back.tool_choice is None
    assert format_of(back.response_format) == format_of(fmt)
    assert (back.temperature, back.top_p, back.max_tokens, back.stop, back.seed) == (
        temperature, top_p, max_tokens, stop, seed,
    )  # fmt: skip
    assert back.extra == extra


call_ids = st.sampled_from(["call_0", "call_1", "toolu_x", "call_abc"])


@st.composite
def answers(draw: st.DrawFn) -> ChatResponse:
    calls = [
        ToolCall(draw(call_ids), draw(st.sampled_from(["f", "g"])), draw(arguments))
        for _ in range(draw(st.integers(0, 3)))
    ]
    completion = draw(st.integers(0, 10_000))
    prompt = draw(st.integers(0, 10_000))
    usage = Usage(
        prompt,
        completion,
        cached_tokens=draw(st.integers(0, prompt)),
        reasoning_tokens=draw(st.integers(0, completion)),
    )
    return ChatResponse(
        content=draw(st.text(max_size=30)),
        finish_reason=draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error"])),
        usage=usage,
        model="some-model",
        provider="x",
        tool_calls=calls,
        id="r-1",
        reasoning=draw(st.none() | texts),
        reasoning_signature=draw(st.none() | signatures),
    )


def expected_finish(response: ChatResponse) -> str:
    """Gemini ends a turn of calls with STOP, so the finish follows the calls."""
    if response.finish_reason in ("stop", "tool_calls"):
        return "tool_calls" if response.tool_calls else "stop"
    return response.finish_reason


def call_shape(response: ChatResponse) -> list[tuple[Any, ...]]:
    return [(c.id, c.name, c.arguments) for c in response.tool_calls]


@settings(max_examples=80, deadline=None)
@given(answers())
def test_response_round_trip(original: ChatResponse) -> None:
    wire = json.loads(json.dumps(response_to_wire(original)))
    back = codec.decode_chat(wire, provider="gemini", model="asked")
    assert (back.content, back.reasoning, back.reasoning_signature) == (
        original.content, original.reasoning, original.reasoning_signature,
    )  # fmt: skip
    assert call_shape(back) == call_shape(original)
    assert back.finish_reason == expected_finish(original)
    assert (back.usage, back.id, back.model) == (original.usage, "r-1", "some-model")
    sdk_response(wire)


def events_of(response: ChatResponse, cuts: list[int]) -> list[StreamEvent]:
    """The answer as a stream: its text cut at ``cuts``, its calls' arguments in pieces."""
    events: list[StreamEvent] = []
    if response.reasoning:
        events.append(ReasoningDelta(response.reasoning))
    if response.reasoning_signature:
        events.append(ReasoningDelta(signature=response.reasoning_signature))
    text = response.content
    bounds = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    events.extend(TextDelta(text[a:b]) for a, b in itertools.pairwise(bounds))
    for index, call in enumerate(response.tool_calls):
        raw = json.dumps(call.arguments)
        events.append(ToolCallDelta(index, id=call.id, name=call.name))
        events.extend(ToolCallDelta(index, arguments=raw[i : i + 5]) for i in range(0, len(raw), 5))
    events.append(UsageEvent(response.usage))
    events.append(Finish(response.finish_reason, response))
    return events


@settings(max_examples=60, deadline=None)
@given(answers(), st.lists(st.integers(min_value=0), max_size=5), st.lists(st.integers(min_value=0), max_size=12))
def test_stream_round_trip_across_any_split(original: ChatResponse, text_cuts: list[int], byte_cuts: list[int]) -> None:
    raw = encode_stream(events_of(original, text_cuts))
    bounds = [0, *sorted({c % (len(raw) + 1) for c in byte_cuts}), len(raw)]
    assembler = StreamAssembler("gemini", MODEL)
    decoder = ChatStreamDecoder(assembler, "gemini", lambda chunk: payload_error(chunk, provider="gemini"))
    sse = SSEDecoder()
    for piece in [*(raw[a:b] for a, b in itertools.pairwise(bounds)), None]:
        for frame in sse.feed(piece) if piece is not None else sse.flush():
            for event in decoder.feed(frame):
                assembler.add(event)
            sdk_response(json.loads(frame.data))
    decoder.close()
    back = assembler.response()
    assert (back.content, back.reasoning, back.reasoning_signature) == (
        original.content, original.reasoning, original.reasoning_signature,
    )  # fmt: skip
    assert call_shape(back) == call_shape(original)
    assert (back.finish_reason, back.usage) == (expected_finish(original), original.usage)
