"""Campaign operations behind the API: create (validated to the last recipient), read with
progress, pause, resume, cancel, and the recipients' pages.

Any process with the store can do these (a cluster's api process too): they only write the
campaign's rows. The runner on the session's process notices the change (at once when it
is this process, within its poll otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from service.campaigns.plan import effective_rate, render, variables_in, zone
from service.campaigns.runner import (
    CampaignRunner,
    completed_event,
    counts_of,
    drop_media,
    paused_event,
)
from service.clock import iso
from service.errors import Conflict, NotFound, SessionNotFound, ValidationFailed
from service.messaging.messenger import Messenger
from service.messaging.pacing import PacingPolicy
from service.messaging.request import SEND_AT_GRACE, normalize_recipient, parse_send_request
from service.models import campaigns as cm
from service.models.requests import MAX_CAPTION, MAX_TEXT
from service.store import SessionRecord
from service.store.campaigns import (
    ACTIVE,
    FINAL,
    CampaignRecord,
    CampaignStore,
    NewRecipient,
    RecipientRecord,
)

# How far ahead a campaign may be scheduled.
START_AT_HORIZON = 365 * 86_400.0


def new_campaign_id() -> str:
    return "cmp_" + secrets.token_hex(12)


class CampaignManager:
    """The API's side of campaigns."""

    def __init__(
        self,
        campaigns: CampaignStore,
        messenger: Messenger,
        pacing: PacingPolicy,
        sessions_root: Path,
        runner: CampaignRunner | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.campaigns = campaigns
        self.store = campaigns.store
        self.messenger = messenger
        self.pacing = pacing
        self.sessions_root = sessions_root
        self.runner = runner
        self.clock = clock
        self._forgetting: set[asyncio.Task[None]] = set()

    async def _session(self, session_id: str) -> SessionRecord:
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    async def get(self, session_id: str, campaign_id: str) -> CampaignRecord:
        await self._session(session_id)
        campaign = await self.campaigns.get(campaign_id)
        if campaign is None or campaign.session_id != session_id:
            raise NotFound(
                f"no campaign {campaign_id!r} in session {session_id!r}",
                code="campaign_not_found",
                details={"campaign_id": campaign_id},
            )
        return campaign

    async def of_session(self, session_id: str) -> list[CampaignRecord]:
        await self._session(session_id)
        return await self.campaigns.find(session_id)

    # -- create ---------------------------------------------------------------------------

    async def create(self, session_id: str, request: cm.CampaignCreate) -> CampaignRecord:
        session = await self._session(session_id)
        message = request.message
        template = message.type == "template"
        if template and (session.provider_mode == "webjs" or session.meta_sealed is None):
            raise ValidationFailed(
                "message.type",
                "templates go through the Cloud API: give this session Meta credentials",
            )
        if not template and session.provider_mode == "meta":
            # The Cloud API refuses free text outside the 24-hour window: a broadcast from
            # a Meta number must be a template.
            raise ValidationFailed(
                "message.type", "a meta session sends campaigns as Cloud API templates only"
            )
        outgoing = _check_message(message)
        if request.window is not None:
            if zone(request.window.timezone) is None:
                raise ValidationFailed("window.timezone", "is not a known IANA time zone")
            if request.window.start == request.window.end:
                raise ValidationFailed("window.end", "must differ from window.start")
        used = variables_in(message.text) | variables_in(
            outgoing.template if outgoing.template else None
        )
        start_at = _start_at(request.start_at, self.clock())
        limit = MAX_TEXT if message.type == "text" else MAX_CAPTION
        # Seconds for 100,000 recipients: off the event loop.
        recipients = await asyncio.to_thread(
            _recipients, request.recipients, used, message.text, limit, message.type == "text"
        )
        for i, one in enumerate(recipients):
            if not template and not self.messenger.selector.reaches(session, one.chat_id):
                raise ValidationFailed(f"recipients.{i}.to", "cannot be reached by this session")
        campaign_id = new_campaign_id()
        spec: dict[str, Any] = {"type": message.type, "text": message.text}
        if outgoing.template is not None:
            spec["template"] = outgoing.template
        if outgoing.media is not None:
            stored, _ = await self.messenger._store_media(session, campaign_id, outgoing)
            spec["media"] = {k: stored[k] for k in ("mimetype", "filename", "size", "file", "url")}
        options = {
            "rate": request.rate.model_dump(),
            "stop_rule": request.stop_rule.model_dump(),
            "window": request.window.model_dump() if request.window else None,
        }
        record = await self.campaigns.create(
            CampaignRecord(
                id=campaign_id,
                session_id=session_id,
                workspace_id=session.workspace_id,
                name=request.name,
                status="scheduled",
                message=json.dumps(spec, ensure_ascii=False),
                options=json.dumps(options),
                start_at=start_at,
                reason=None,
                total=len(recipients),
            ),
            recipients,
        )
        self._wake(session_id)
        return record

    def forget(self, session_id: str) -> None:
        """The session is being deleted: its campaigns and their recipients go too."""
        task = asyncio.get_running_loop().create_task(self.campaigns.delete_session(session_id))
        # Held until done: a task nothing references may be collected before it runs.
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    def _wake(self, session_id: str) -> None:
        if self.runner is not None:
            self.runner.wake(session_id)

    # -- state changes --------------------------------------------------------------------

    async def pause(self, session_id: str, campaign_id: str) -> CampaignRecord:
        campaign = await self.get(session_id, campaign_id)
        counts = await self.campaigns.counts(campaign.id)
        done = await self.campaigns.update(
            campaign,
            {"status": "paused", "reason": "requested"},
            lambda c: [paused_event(c, counts, "requested")],
            expect=ACTIVE,
        )
        return await self._moved(done, session_id, campaign_id)

    async def resume(self, session_id: str, campaign_id: str) -> CampaignRecord:
        campaign = await self.get(session_id, campaign_id)
        # Back to where it was: running once it has started, else waiting for its start.
        status = "running" if campaign.started_at is not None else "scheduled"
        done = await self.campaigns.resume(campaign, status)
        return await self._moved(done, session_id, campaign_id)

    async def cancel(self, session_id: str, campaign_id: str) -> CampaignRecord:
        campaign = await self.get(session_id, campaign_id)
        counts = await self.campaigns.counts(campaign.id)

        def events(c: CampaignRecord) -> list[Any]:
            moved = dict(counts)
            moved["cancelled"] = moved.get("cancelled", 0) + moved.pop("pending", 0)
            return [completed_event(c, moved)]

        done = await self.campaigns.cancel(campaign, events)
        if done is not None:
            await self._unqueue(done)
        return await self._moved(done, session_id, campaign_id)

    async def _unqueue(self, campaign: CampaignRecord) -> None:
        """A cancelled campaign's message still waiting in the queue is not sent: it is
        cancelled too (unless the sender took it first)."""
        if campaign.last_message_id is not None:
            with contextlib.suppress(Conflict, NotFound):
                await self.messenger.cancel(campaign.session_id, campaign.last_message_id)
        drop_media(self.sessions_root, campaign)

    async def _moved(
        self, done: CampaignRecord | None, session_id: str, campaign_id: str
    ) -> CampaignRecord:
        if done is None:
            current = await self.get(session_id, campaign_id)
            raise Conflict(
                f"campaign is {current.status}",
                code="campaign_state",
                details={"status": current.status},
            )
        self._wake(session_id)
        return done

    # -- views ----------------------------------------------------------------------------

    async def view(self, campaign: CampaignRecord) -> cm.Campaign:
        counts = await self.campaigns.counts(campaign.id)
        spec = json.loads(campaign.message)
        options = json.loads(campaign.options)
        rate = options["rate"]
        effective = effective_rate(rate["per_minute"], self.pacing)
        media = spec.get("media")
        remaining = sum(counts.get(k, 0) for k in ("pending", "queued", "sending"))
        estimated = None
        if campaign.status not in FINAL and effective > 0:
            now = self.clock()
            begin = max(now, campaign.start_at or 0.0, campaign.next_send_at or 0.0)
            estimated = iso(begin + remaining * 60.0 / effective)
        return cm.Campaign(
            id=campaign.id,
            session_id=campaign.session_id,
            workspace_id=campaign.workspace_id,
            name=campaign.name,
            status=campaign.status,  # type: ignore[arg-type]
            reason=campaign.reason,
            message=cm.CampaignMessageView(
                type=spec["type"],
                text=spec.get("text"),
                media=cm.CampaignMedia(
                    mimetype=media.get("mimetype"),
                    filename=media.get("filename"),
                    size=media.get("size"),
                )
                if media
                else None,
                template=spec.get("template"),
            ),
            total=campaign.total,
            counts=counts_of(counts),
            rate=cm.CampaignRateView(
                per_minute=rate["per_minute"], jitter=rate["jitter"], effective_per_minute=effective
            ),
            window=cm.CampaignWindowView(**options["window"]) if options.get("window") else None,
            stop_rule=cm.CampaignStopRuleView(**options["stop_rule"]),
            start_at=iso(campaign.start_at),
            next_send_at=iso(campaign.next_send_at),
            estimated_end_at=estimated,
            created_at=iso(campaign.created_at) or "",
            started_at=iso(campaign.started_at),
            finished_at=iso(campaign.finished_at),
        )

    @staticmethod
    def recipient_view(row: RecipientRecord) -> cm.CampaignRecipientView:
        return cm.CampaignRecipientView(
            seq=row.seq,
            to=row.chat_id,
            key=row.key,
            variables=json.loads(row.variables) if row.variables else None,
            status=row.status,  # type: ignore[arg-type]
            message_id=row.message_id,
            provider_message_id=row.provider_message_id,
            error=row.error,
        )

    async def recipients(
        self, session_id: str, campaign_id: str, query: cm.CampaignRecipientsQuery
    ) -> cm.CampaignRecipientPage:
        campaign = await self.get(session_id, campaign_id)
        rows = await self.campaigns.recipients(
            campaign.id, status=query.status, after=query.after, limit=query.limit
        )
        return cm.CampaignRecipientPage(
            data=[self.recipient_view(r) for r in rows],
            next_after=rows[-1].seq if len(rows) == query.limit else None,
        )

    async def export(
        self, campaign: CampaignRecord, status: str | None, batch: int = 1000
    ) -> AsyncIterator[list[RecipientRecord]]:
        """Every recipient (of `status`), a batch at a time, for the CSV export."""
        after = 0
        while True:
            rows = await self.campaigns.recipients(
                campaign.id, status=status, after=after, limit=batch
            )
            if rows:
                yield rows
            if len(rows) < batch:
                return
            after = rows[-1].seq


# Any valid recipient: the message is checked as a send request, without its recipients.
_ANYONE = "1000000@c.us"


def _check_message(message: cm.CampaignMessage) -> Any:
    """The message as a send request would be checked (its type's part, media, template),
    with problems named under `message.`."""
    data = message.model_dump(exclude_none=True) | {"to": _ANYONE}
    try:
        return parse_send_request(data, None)
    except ValidationFailed as exc:
        text = exc.message.split(": ", 1)[-1]
        raise ValidationFailed(f"message.{exc.field}", text) from None


def _start_at(start_at: float | None, now: float) -> float | None:
    """A start time within the horizon (a minute in the past is now: clocks differ)."""
    if start_at is None:
        return None
    if start_at < now - SEND_AT_GRACE:
        raise ValidationFailed(
            "start_at",
            f"is more than {SEND_AT_GRACE:g} seconds in the past: leave it out to start now",
        )
    if start_at > now + START_AT_HORIZON:
        raise ValidationFailed(
            "start_at",
            f"is more than {START_AT_HORIZON / 86_400:g} days ahead, the furthest allowed",
        )
    return start_at


def _recipients(
    given: list[cm.CampaignRecipient],
    used: set[str],
    text: str | None,
    limit: int,
    needs_text: bool,
) -> list[NewRecipient]:
    """The recipients as stored: chat ids, each once, each with every variable the
    message uses, and a text neither blank (a text message) nor longer than WhatsApp
    takes once filled in."""
    seen: dict[str, int] = {}
    out: list[NewRecipient] = []
    for i, one in enumerate(given):
        try:
            chat_id = normalize_recipient(one.to)
        except ValidationFailed as exc:
            raise ValidationFailed(f"recipients.{i}.to", exc.message.split(": ", 1)[-1]) from None
        if chat_id in seen:
            raise ValidationFailed(
                f"recipients.{i}.to", f"repeats recipient {seen[chat_id]}: each is sent once"
            )
        seen[chat_id] = i
        values = one.variables or {}
        missing = sorted(used - set(values))
        if missing:
            raise ValidationFailed(
                f"recipients.{i}.variables", f"has no value for {', '.join(missing)}"
            )
        if text is not None and values:
            rendered = render(text, values)
            if len(rendered) > limit:
                raise ValidationFailed(
                    f"recipients.{i}.variables", f"make the text longer than {limit} characters"
                )
            if needs_text and not rendered.strip():
                # WhatsApp sends no empty text: refused here, not failed later.
                raise ValidationFailed(f"recipients.{i}.variables", "leave the text blank")
        stored = json.dumps(one.variables, ensure_ascii=False) if one.variables else None
        if stored is not None and len(stored.encode()) > cm.MAX_VARIABLES_BYTES:
            raise ValidationFailed(
                f"recipients.{i}.variables",
                f"take more than {cm.MAX_VARIABLES_BYTES} bytes as JSON in UTF-8",
            )
        out.append(NewRecipient(chat_id=chat_id, variables=stored, key=one.key))
    return out
