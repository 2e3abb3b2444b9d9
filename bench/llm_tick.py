"""Wall time of one engine tick with five LLM agents whose model answers after a fixed delay.

    python bench/llm_tick.py                 # model latency 1 s, 5 ticks
    python bench/llm_tick.py --delay 2 --ticks 3

Two loopback fake servers (tests/fake_llm_servers.py) speak the Gemini and OpenAI protocols and
answer every call after ``--delay`` seconds with the prompt's rule signal. The desk runs with
``AGENT_LLM=auto`` and both keys set, so the three Gemini agents and the two Grok agents call their
model through the real google-genai and openai SDKs on every tick (four 15m bars per tick: every
agent is due). It prints the latency of one call made alone, each tick's wall time and model calls,
and the ratio tick / single call: with concurrent agents it should stay near 1 (target < 1.3), where
sequential calls would make it about 5. One sequential tick is measured for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import service  # noqa: E402
from core.agents.llm_prompts import SCHEMA, SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.desk.engine import run_cycle  # noqa: E402
from core.desk.runtime import build_desk  # noqa: E402
from core.llm.providers import build_provider  # noqa: E402
from core.store.db import open_database  # noqa: E402
from tests.fake_llm_servers import FakeLLMServer, delayed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=1.0, help="model latency in seconds")
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()

    with FakeLLMServer("gemini", default=delayed(args.delay)) as gemini, \
            FakeLLMServer("openai", default=delayed(args.delay)) as grok, \
            tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url=url, replay_interval="15m", replay_start="2025-09-01",
            bars_per_tick=4, agent_llm="auto",
            gemini_api_key=gemini.api_key, gemini_base_url=gemini.url,
            xai_api_key=grok.api_key, xai_base_url=grok.url, llm_timeout_seconds=30,
        )
        single = []
        for kind in ("gemini", "grok", "gemini", "grok"):
            provider = build_provider(kind, settings)
            assert provider is not None
            started = time.perf_counter()
            provider.complete(SYSTEM, "RULE_SIGNAL_JSON: {\"decisions\": []}", SCHEMA)
            single.append(time.perf_counter() - started)
        one = statistics.median(single)

        engine = open_database(url)
        session_id = service.create_session(engine, settings).id
        desk = build_desk(settings, engine, session_id, lease=None)
        print(f"model latency set to {args.delay:g} s; one call alone: {one:.3f} s "
              f"(median of {len(single)}, real SDKs over loopback)")
        print(f"agents: {', '.join(f'{k} ({type(s).__name__})' for k, s in desk.strategies.items())}")
        ticks = []
        for i in range(args.ticks):
            before = len(gemini.requests) + len(grok.requests)
            started = time.perf_counter()
            run_cycle(desk)
            took = time.perf_counter() - started
            calls = len(gemini.requests) + len(grok.requests) - before
            print(f"tick {i + 1}: {took:.3f} s wall, {calls} model calls, ratio {took / one:.2f}x")
            if calls == 5:
                ticks.append(took)
        desk.concurrent_agents = False
        before = len(gemini.requests) + len(grok.requests)
        started = time.perf_counter()
        run_cycle(desk)
        sequential = time.perf_counter() - started
        calls = len(gemini.requests) + len(grok.requests) - before
        desk.db.close()
        engine.dispose()

    if ticks:
        worst = max(ticks)
        print(f"concurrent: median tick {statistics.median(ticks):.3f} s, worst {worst:.3f} s "
              f"with 5 calls each -> worst/single = {worst / one:.2f}x (target < 1.3x): "
              f"{'PASS' if worst / one < 1.3 else 'FAIL'}")
    print(f"sequential (for comparison): {sequential:.3f} s with {calls} calls = {sequential / one:.2f}x")


if __name__ == "__main__":
    main()
