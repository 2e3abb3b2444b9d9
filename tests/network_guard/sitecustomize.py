"""Loaded by every Python subprocess the suite starts: the loopback-only network guard."""

import os

if os.environ.get("TEST_NETWORK_GUARD") == "loopback":
    import loopback_only

    loopback_only.install()
