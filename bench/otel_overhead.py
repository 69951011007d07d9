"""What OpenTelemetry costs a tracked server: `tools/call` time per call with `track_mcp(..., otel=True)` and without.

    .venv/bin/python bench/otel_overhead.py [--calls N] [--rounds R]

One process, the SDK's in-memory client driving the smallest `MCPServer` (one `echo` tool) call after call, so the
figures are the server-side work of a call (the SDK's dispatch, the middleware chain, the tool) without a network.
Rows:

    plain          the server as it is (the SDK's own OpenTelemetry middleware, with no SDK installed: a no-op)
    tracked        `track_mcp(server, org, sink=<a sink that drops everything>)`
    +otel no-op    the same with `otel=True` and no OpenTelemetry SDK configured (the API's no-op providers)
    +otel SDK      the same with an SDK `TracerProvider` (a `BatchSpanProcessor` to an exporter that drops the
                   spans) and `MeterProvider` (both histograms recorded, an in-memory reader): the cost of making,
                   filling and queueing a span and recording the duration, not of the network

Every round runs every row (every other round in reverse order); the figures are medians over rounds. The overhead
column is the median of per-round differences against `tracked`, per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from mcp import Client
from mcp.server import MCPServer
from mcp_gateway_tracking import CaptureBatch, LocalSink, Tracker, track_mcp
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

ROWS: Final = ("plain", "tracked", "+otel no-op", "+otel SDK")


class _DroppingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def _drop(org_id: str, batch: CaptureBatch) -> None:
    return None


def _server() -> MCPServer:
    server = MCPServer("bench")

    @server.tool()
    async def echo(text: str) -> str:
        """Echo the text."""
        return text

    return server


class _Row:
    def __init__(self, name: str, exporter: _DroppingExporter) -> None:
        self.name = name
        self.server = _server()
        self.tracker: Tracker | None = None
        self.providers: list[Any] = []
        if name == "plain":
            return
        options: dict[str, Any] = {}
        if name == "+otel no-op":
            options["otel"] = True
        elif name == "+otel SDK":
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            options |= {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
            self.providers = [tracer_provider, meter_provider]
        self.tracker = track_mcp(self.server, "bench-org", sink=LocalSink(_drop, max_queue=1_000_000), **options)

    async def run(self, calls: int) -> float:
        """Seconds per call over `calls` sequential calls in one session."""
        async with Client(self.server) as client:
            await client.call_tool("echo", {"text": "warm"})
            started = time.perf_counter()
            for _ in range(calls):
                await client.call_tool("echo", {"text": "hello"})
            return (time.perf_counter() - started) / calls

    async def close(self) -> None:
        if self.tracker is not None:
            await self.tracker.aclose()
        for provider in self.providers:
            provider.shutdown()


async def main(calls: int, rounds: int) -> None:
    exporter = _DroppingExporter()
    rows = [_Row(name, exporter) for name in ROWS]
    per_call: dict[str, list[float]] = {name: [] for name in ROWS}
    try:
        for round_ in range(rounds):
            order = rows if round_ % 2 == 0 else list(reversed(rows))
            for row in order:
                per_call[row.name].append(await row.run(calls))
    finally:
        for row in rows:
            await row.close()
    base = per_call["tracked"]
    print(f"tools/call, in-memory client, {calls} calls x {rounds} rounds (medians)")
    print(f"{'row':<14}{'us/call':>10}{'calls/s':>10}{'vs tracked':>12}")
    for name in ROWS:
        times = per_call[name]
        median = statistics.median(times)
        extra = statistics.median(t - b for t, b in zip(times, base, strict=True))
        print(f"{name:<14}{median * 1e6:>10.1f}{1 / median:>10.0f}{_signed(extra * 1e6):>12}")
    print(f"spans exported by the SDK row: {exporter.spans}")


def _signed(us: float) -> str:
    return f"{us:+.1f} us"


def _positive(kind: Callable[[str], int]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = kind(text)
        if value < 1:
            raise argparse.ArgumentTypeError("must be at least 1")
        return value

    return parse


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=_positive(int), default=2000)
    parser.add_argument("--rounds", type=_positive(int), default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
