"""Routes that carry their own contract: each operation names its models and answers, and
`service.openapi` writes the document from them.

One Starlette route per path with every method on it, so a wrong method is a 405 whose
`Allow` header lists all the methods the path has, not only those of the first route that
matched it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.errors import ValidationFailed
from service.models.base import Input, Output, validate
from service.validation import json_object

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Raw:
    """An answer that is not JSON: a PNG, a file, plain text."""

    media_type: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    schema: dict[str, Any]
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One method on one path: the handler and everything the document says about it.

    `answers` maps a success status to its model (JSON), a `Raw` answer, or None (no body).
    `errors` lists the statuses only this operation has; the ones every operation of its
    kind has (401 when signed, 400/413/422 with a body, 422 with parameters) are added.
    """

    summary: str
    handler: Handler
    answers: dict[int, type[Output] | Raw | None]
    errors: tuple[int, ...] = ()
    body: type[Input] | None = None
    body_required: bool = True
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

        async def dispatch(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await self.operations[method].handler(request)

        super().__init__(path, dispatch, methods=list(self.operations))


def reply(model: Output, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A model as the JSON answer."""
    return JSONResponse(model.json_dict(), status_code=status, headers=headers)


async def body_of(request: Request, model: type[Input], *, allow_empty: bool = False) -> Any:
    """The request body as `model`: malformed JSON is 400, a bad field 422."""
    data = await json_object(request, allow_empty=allow_empty)
    return validate(model, data)


def query_of(request: Request, model: type[Input]) -> Any:
    """The query string as `model`. A name given twice is refused rather than guessed."""
    params = request.query_params
    names = [name for name, _ in params.multi_items()]
    for name in names:
        if names.count(name) > 1:
            raise ValidationFailed(name, "is given more than once")
    return validate(model, dict(params))
