"""Client order ids: deterministic from the decision behind an order, unique per install.

A client order id is the desk's only handle on an order whose answer was lost (timeout, 503,
crash), so it must be derivable again from what the store holds, never random per attempt:
``<install>-s<session>p<position>-<purpose><n>``, where the position row carries the CEO decision
that caused it and ``n`` counts earlier orders of that purpose on the position. The install prefix
(six lowercase base-36 characters) is drawn once and stored in ``desk_install``, so two desks, or a
database restored from a backup, sharing one venue account never reuse each other's ids. Every id
fits the venue's rule ``^[.A-Z:/a-z0-9_-]{1,36}$``.
"""

from __future__ import annotations

import re
import secrets
import string

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store.tables import INSTALL

PREFIX_KEY = "client_prefix"
VENUE_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_ALPHABET = string.ascii_lowercase + string.digits


def install_prefix(db: Session) -> str:
    """The install's prefix, created on first use (a concurrent creator wins and is adopted)."""
    found = db.scalar(select(INSTALL.c.value).where(INSTALL.c.key == PREFIX_KEY))
    if found is not None:
        return str(found)
    candidate = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    try:
        db.execute(insert(INSTALL).values(key=PREFIX_KEY, value=candidate))
        db.commit()  # durable before any order uses it
    except IntegrityError:  # another process drew one first: adopt it
        db.rollback()
    return str(db.scalar(select(INSTALL.c.value).where(INSTALL.c.key == PREFIX_KEY)))


def client_order_id(prefix: str, session_id: int, position_id: int, tag: str, n: int | None) -> str:
    """``tag`` is ``e`` (entry), ``s`` (stop), ``t`` (take-profit), ``r`` (trailing stop) or
    ``x`` (a close)."""
    cid = f"{prefix}-s{session_id}p{position_id}-{tag}{'' if n is None else n}"
    if not VENUE_ID.match(cid):
        raise ValueError(f"client order id {cid!r} is not venue-legal")
    return cid


def is_ours(prefix: str, cid: str) -> bool:
    return cid.startswith(f"{prefix}-s")
