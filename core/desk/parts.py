"""The parts of a session's ``Desk`` that the model services and the shadow book use.

Why it exists: a ``Desk`` (``core.desk.context``) holds those services, so they cannot import its
type back without an import circle; they name the parts they touch here and any ``Desk`` provides
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.config import Settings
    from core.desk.execution import Execution
    from core.desk.ledger import Ledger
    from core.exchanges.base import Exchange


class DeskParts(Protocol):
    db: Session
    ledger: Ledger
    exchange: Exchange
    settings: Settings
    execution: Execution
