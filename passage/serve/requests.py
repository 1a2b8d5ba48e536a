"""Reading requests: the body within its size limit, UTF-8 JSON, and the texts checked.

Every problem is an ``ApiError`` with the HTTP status and a message that says what to change;
the app answers it as ``{"error": message, "status": status}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error answered to the client as JSON with ``status`` (and optional headers)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Limits:
    """Request limits (the ``passage serve`` flags)."""

    max_body_bytes: int = 4 << 20
    max_texts: int = 256
    max_chars: int = 100_000


EXAMPLE = '{"inputs": "a text"}'


async def read_json(request, limits: Limits) -> object:
    """A Starlette request's body as JSON (``read_body``, then ``parse_json``)."""
    return parse_json(await read_body(request.receive, request.headers.get("content-length"),
                                      limits))


def _too_big(limits: Limits) -> ApiError:
    return ApiError(413, f"the request body is larger than {limits.max_body_bytes:,} bytes: "
                         "send fewer or shorter texts per request, or start the server with a "
                         "larger --max-body-bytes")


async def read_body(receive: Callable[[], Awaitable[Mapping[str, Any]]], declared: str | None,
                    limits: Limits) -> bytes:
    """A request's body from its ASGI ``receive``, read no further than
    ``limits.max_body_bytes`` (``declared``: its Content-Length header, if any)."""
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _too_big(limits)
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise _too_big(limits)
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_json(body: bytes) -> object:
    """A body as JSON, or a 400 that says what is wrong with it."""
    if not body.strip():
        raise ApiError(400, f"the request has no body: send JSON such as {EXAMPLE}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the body is not UTF-8 (byte 0x{body[e.start]:02x} at offset "
                            f"{e.start}): send JSON encoded as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the body is not valid JSON ({e.msg} at line {e.lineno} column "
                            f"{e.colno}): send JSON such as {EXAMPLE}") from None
    except RecursionError:
        raise ApiError(400, "the body nests too deeply: send JSON such as "
                            f"{EXAMPLE}") from None


def _check_text(text: object, where: str, limits: Limits) -> str:
    if not isinstance(text, str):
        raise ApiError(422, f"{where} is {_kind(text)}, not a string: send the text as a JSON "
                            "string")
    if not text.strip():
        raise ApiError(422, f"{where} is empty{' (only whitespace)' if text else ''}: send some "
                            "text to predict")
    if len(text) > limits.max_chars:
        raise ApiError(422, f"{where} has {len(text):,} characters, more than the limit of "
                            f"{limits.max_chars:,}: shorten it, or start the server with a "
                            "larger --max-chars")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ApiError(422, f"{where} holds an unpaired surrogate (\\u{ord(text[e.start]):04x} "
                            f"at character {e.start}): send valid Unicode") from None
    return text


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _object(body: object) -> dict:
    if not isinstance(body, dict):
        raise ApiError(422, f"the body is {_kind(body)}; send a JSON object such as {EXAMPLE}")
    if "inputs" not in body:
        raise ApiError(422, f"the body has no 'inputs': send JSON such as {EXAMPLE}")
    unknown = sorted(set(body) - {"inputs", "parameters"})
    if unknown:
        raise ApiError(422, f"unknown field(s) {unknown}: the body takes 'inputs' and "
                            "'parameters'")
    return body


def parse_predict(body: object, limits: Limits) -> tuple[list[str], bool, int | None]:
    """(texts, whether a single text was sent, top_k) from a /predict body."""
    body = _object(body)
    inputs = body["inputs"]
    single = isinstance(inputs, str)
    if single:
        texts = [_check_text(inputs, "inputs", limits)]
    elif isinstance(inputs, list):
        if not inputs:
            raise ApiError(422, "inputs is an empty list: send at least one text")
        if len(inputs) > limits.max_texts:
            raise ApiError(422, f"inputs has {len(inputs):,} texts, more than the limit of "
                                f"{limits.max_texts:,} per request: split them over several "
                                "requests, or start the server with a larger --max-texts")
        texts = [_check_text(t, f"inputs[{i}]", limits) for i, t in enumerate(inputs)]
    else:
        raise ApiError(422, f"inputs is {_kind(inputs)}: send a string or a list of strings")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(422, f"parameters is {_kind(parameters)}: send an object such as "
                            '{"top_k": 1}')
    unknown = sorted(set(parameters) - {"top_k"})
    if unknown:
        raise ApiError(422, f"unknown parameter(s) {unknown}: the only one is 'top_k'")
    top_k = parameters.get("top_k")
    if top_k is not None and (type(top_k) is not int or top_k < 1):
        raise ApiError(422, f"parameters.top_k is {top_k!r}: send a whole number >= 1, or "
                            "null for every label")
    return texts, single, top_k


def parse_trace(body: object, limits: Limits) -> str:
    """The one text of a /trace body."""
    body = _object(body)
    if body.get("parameters"):
        raise ApiError(422, "/trace takes no parameters")
    if not isinstance(body["inputs"], str):
        raise ApiError(422, f"inputs is {_kind(body['inputs'])}: /trace takes one text, as a "
                            "string")
    return _check_text(body["inputs"], "inputs", limits)
