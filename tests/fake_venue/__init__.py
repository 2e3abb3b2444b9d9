"""A loopback fake AsterDex venue for tests: real HTTP on 127.0.0.1, real signature checks, faults.

See ``server.FakeVenue`` for the controls (prices, faults, market clock) and ``book.Book`` for the
matching engine. Nothing here reaches an outside address.
"""

from tests.fake_venue.book import Book, VenueError
from tests.fake_venue.server import FakeVenue, Fault, running_venue

__all__ = ["Book", "FakeVenue", "Fault", "VenueError", "running_venue"]
