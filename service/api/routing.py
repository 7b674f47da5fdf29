"""Routes that carry their own contract: each operation names its models and answers, and
`service.openapi` writes the document from them.

One Starlette route per path with every method on it, so a wrong method is a 405 whose
`Allow` header lists all the methods the path has, not only those of the first route that
matched it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.errors import ValidationFailed
from service.models.base import Input, Output, failure, validate
from service.models.params import PATH_PARAMS
from service.validation import json_object

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=Input)


@dataclass(frozen=True)
class Raw:
    """An answer that is not JSON: a PNG, a file, plain text."""

    media_type: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Header:
    """A request header the operation reads, with the type that validates it."""

    name: str
    description: str
    type: Any
    required: bool = False
    adapter: TypeAdapter[Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", TypeAdapter(self.type))


@dataclass(frozen=True)
class Operation:
    """One method on one path: the handler and everything the document says about it.

    `answers` maps a success status to its model (JSON), a `Raw` answer, or None (no body).
    `errors` lists the statuses only this operation has; the ones every operation of its
    kind has (401 when signed, 400/408/413/422 with a body, 422 with parameters) are added.
    """

    summary: str
    handler: Handler
    answers: dict[int, type[Output] | Raw | None]
    errors: tuple[int, ...] = ()
    body: type[Input] | None = None
    body_required: bool = True
    # A body the handler parses itself (Meta's), described by this schema instead of a model.
    raw_body: dict[str, Any] | None = None
    query: type[Input] | None = None
    headers: tuple[Header, ...] = ()
    signed: bool = True
    description: str | None = None
    # Other forms of the first success answer, chosen by the Accept header.
    alternatives: tuple[Raw, ...] = ()


class Resource(Route):
    """A path and its operations."""

    def __init__(self, path: str, **operations: Operation) -> None:
        self.operations = {method.upper(): op for method, op in operations.items()}
        self.parameters = re.findall(r"{(\w+)}", path)
        unknown = [name for name in self.parameters if name not in PATH_PARAMS]
        if unknown:
            raise TypeError(f"{path}: no type for the path parameters {unknown}")

        async def dispatch(request: Request) -> Response:
            op = self.operations["GET" if request.method == "HEAD" else request.method]
            if op.signed and op.query is None and request.query_params:
                # A signed call's query string is part of what it means: never ignore one.
                name = next(iter(request.query_params))
                raise ValidationFailed(name[:64], "is not a known query parameter")
            return await op.handler(request)

        super().__init__(path, dispatch, methods=list(self.operations), name=path)
        self.allow = ", ".join(sorted(self.methods or ()))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            # Starlette joins an unordered set; the same answer every time reads better.
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        await super().handle(scope, receive, send)


def reply(model: Output, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A model as the JSON answer."""
    return JSONResponse(model.json_dict(), status_code=status, headers=headers)


async def body_of(request: Request, model: type[M], *, allow_empty: bool = False) -> M:
    """The request body as `model`: malformed JSON is 400, a bad field 422."""
    data = await json_object(request, allow_empty=allow_empty)
    return validate(model, data)


def query_of(request: Request, model: type[M]) -> M:
    """The query string as `model`. A name given twice is refused rather than guessed."""
    params = request.query_params
    counts = Counter(name for name, _ in params.multi_items())
    for name, count in counts.items():
        if count > 1:
            raise ValidationFailed(name[:64], "is given more than once")
    return validate(model, dict(params))


_ADAPTERS = {name: TypeAdapter(kind) for name, kind in PATH_PARAMS.items()}


def path_param(request: Request, name: str) -> str:
    """A path parameter, validated by its type in `PATH_PARAMS` (ids become paths)."""
    value = request.path_params[name]
    try:
        checked: str = _ADAPTERS[name].validate_python(value)
    except ValidationError as exc:
        raise failure(exc, prefix=name) from None
    return checked


def header_of(request: Request, header: Header) -> Any:
    """A request header, validated by its type; None when absent."""
    value = request.headers.get(header.name)
    if value is None:
        return None
    try:
        return header.adapter.validate_python(value)
    except ValidationError as exc:
        raise failure(exc, prefix=header.name) from None


async def page_call(request: Request, op: str, args: dict[str, Any]) -> Any:
    """Run page operation `op` on the path's session (`Engine.call`: its page here, or its
    worker's in a cluster); the answer's value."""
    session_id = path_param(request, "session_id")
    return await request.app.state.sessions.call(session_id, op, args)
