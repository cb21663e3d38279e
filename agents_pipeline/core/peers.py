"""Discovery and fan-out for agents: who else is in the fleet, and one message to every agent with
a capability (issue #18, "Messages and discovery").

A mixin of SharedState, like the task calls. An agent sees of its peers only their names, types,
capabilities and statuses (docs/security.md); capabilities are granted by an operator, so a
broadcast reaches exactly the agents trusted with that kind of work. Each copy of a broadcast is
an ordinary direct message (claim_messages, ack_message). Imports psycopg2 only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents_pipeline.core import validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import RateLimitedError
from agents_pipeline.core.tasks import MAX_PAYLOAD, label


@dataclass(frozen=True)
class Peer:
    name: str
    agent_type: str
    capabilities: tuple[str, ...]
    status: str             # new, up, late, down, paused


class PeerMessaging:
    """The discovery calls of SharedState; expects ``db``, ``_who`` and ``_refused`` from it."""

    db: Database
    # The token's proof passed to each call: None (NULL) for SharedState, whose connections carry
    # it as a session setting; the HTTP API, sharing one login among agents, passes each one's.
    proof: bytes | None = None
    _who: Callable[[str | None], str]
    _refused: Callable[[str, float | None], RateLimitedError]

    def broadcast(self, capability: str, message_type: str, payload: Any = None, *,
                  client_id: uuid.UUID | str | None = None, agent: str | None = None) -> int:
        """Sends one copy of a message to every other agent granted ``capability``; returns how
        many. Retrying with the same ``client_id`` sends only the copies still missing."""
        name = self._who(agent)
        cap = label(capability, "capability")
        mtype = validation.text(message_type, "message type", max_len=200, required=True)
        doc = validation.document(payload if payload is not None else {}, "message payload", max_bytes=MAX_PAYLOAD)
        key = str(uuid.UUID(str(client_id))) if client_id is not None else str(uuid.uuid4())

        def work(cur):
            cur.execute("SELECT recipients, retry_after_s FROM fleet.broadcast_message(%s, %s::bytea, %s, %s, %s::jsonb, "
                        "%s::uuid)", (name, self.proof, cap, mtype, doc, key))
            return cur.fetchone()

        recipients, retry = self.db.transaction(work)
        if retry is not None:
            raise self._refused("broadcast", retry)
        return recipients

    def peers(self, *, agent: str | None = None) -> list[Peer]:
        """The other agents of the fleet: name, type, capabilities and status, by name."""
        name = self._who(agent)

        def work(cur):
            cur.execute("SELECT name, agent_type, capabilities, status, retry_after_s FROM fleet.list_peers(%s, %s::bytea)",
                        (name, self.proof))
            return cur.fetchall()

        rows = self.db.transaction(work)
        if rows and rows[0][4] is not None:
            raise self._refused("peer listing", rows[0][4])
        return [Peer(r[0], r[1], tuple(r[2]), r[3]) for r in rows]
