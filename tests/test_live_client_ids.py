"""Client order ids: deterministic from the position (so from the CEO decision) behind an order,
unique per install through a prefix drawn once, and always venue-legal."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from core.desk.client_ids import VENUE_ID, client_order_id, install_prefix, is_ours
from core.store.db import open_database


def test_the_install_prefix_is_drawn_once_and_kept(sqlite_url: str, tmp_path) -> None:
    engine = open_database(sqlite_url)
    with Session(engine) as db:
        first = install_prefix(db)
    with Session(engine) as db:
        assert install_prefix(db) == first
    other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    with Session(other) as db:
        assert install_prefix(db) != first  # another install, another prefix (36^6 choices)
    assert re.fullmatch(r"[a-z0-9]{6}", first)


def test_ids_are_deterministic_legal_and_short() -> None:
    cid = client_order_id("ab12cd", 123_456, 987_654_321, "s", 12)
    assert cid == "ab12cd-s123456p987654321-s12"
    assert cid == client_order_id("ab12cd", 123_456, 987_654_321, "s", 12)
    assert len(cid) <= 36 and VENUE_ID.match(cid)
    assert client_order_id("ab12cd", 1, 2, "e", None) == "ab12cd-s1p2-e"
    assert is_ours("ab12cd", cid) and not is_ours("zz99zz", cid)
    with pytest.raises(ValueError):
        client_order_id("ab12cd", 10**12, 10**12, "x", 10**6)  # past 36 characters
