"""Call endpoints: reject a call that rings on the session's account.

The call's id comes from the `call_received` event. Rejecting is a page operation
(`Engine.call`): the session's page asks WhatsApp Web, on this process or, in a cluster,
on the session's worker. A `meta` session has no page: 409 `not_supported_by_provider`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, body_of, path_param, reply
from service.models import requests as rq
from service.models import responses as rs
from service.sessions.manager import SessionManager

# A session that is missing (404); not connected, of the wrong provider, or a call that is
# not ringing (409); a cluster worker that is away (502, 503); a slow page (504).
ERRORS = (404, 409, 502, 503, 504)


async def reject(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    call_id = path_param(request, "call_id")
    # No options yet: a body, if any, must be empty so a typo is not silently ignored.
    await body_of(request, rq.NoOptions, allow_empty=True)
    manager: SessionManager = request.app.state.sessions
    answer = await manager.call(session_id, "calls.reject", {"id": call_id})
    return reply(rs.CallRejected(call_id=call_id, rejected=answer is True))


routes = [
    Resource(
        "/api/sessions/{session_id}/calls/{call_id}/reject",
        post=Operation(
            "Reject an incoming call",
            reject,
            {200: rs.CallRejected},
            errors=ERRORS,
            body=rq.NoOptions,
            body_required=False,
            description="While it rings. A call that ended, was answered or rejected "
            "already, or that this session never saw is 409 `page_refused` with "
            "`details.wa_code` `call_is_not_incoming_ring` or `call_not_found`.",
        ),
    ),
]
