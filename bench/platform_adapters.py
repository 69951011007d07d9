"""What the platform adapters cost: events/s turned into requests (`build_requests`), per platform.

    .venv/bin/python bench/platform_adapters.py                 # about 10 s
    .venv/bin/python bench/platform_adapters.py --events 20000 --rounds 5

Each round builds the requests for `--events` events (one visitor, a Purchase with a small `custom_data`, all
identifiers present) with each adapter, and judges one success answer per request. Prints the median events/s
and microseconds per event over the rounds, the requests made and the bytes of their bodies. The delivery
worker's own throughput (to a fake Meta endpoint) is measured with the outbox.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from typing import Final

from mcp_gateway.integrations.platforms import PLATFORMS, ForwardedEvent, ForwardedUser

CONFIGS: Final = {
    "meta": {"pixel_id": "1234567890", "access_token": "token"},
    "ga4": {"measurement_id": "G-BENCH123", "api_secret": "secret"},
    "tiktok": {"pixel_code": "CBENCHPIXEL01", "access_token": "token"},
    "webhook": {"url": "https://hooks.example/in", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
}
SUCCESS: Final = {
    "meta": (200, b'{"events_received": 1, "messages": [], "fbtrace_id": "x"}'),
    "ga4": (204, b""),
    "tiktok": (200, b'{"code": 0, "message": "OK", "request_id": "r", "data": {}}'),
    "webhook": (200, b'{"ok": true}'),
}


def events(count: int, now_ms: int) -> list[ForwardedEvent]:
    user = ForwardedUser(
        em=hashlib.sha256(b"jane@example.com").hexdigest(),
        ph=hashlib.sha256(b"14155550199").hexdigest(),
        external_id=hashlib.sha256(b"user-42").hexdigest(),
        fbp="fb.1.1764990000000.1234567890",
        client_ip_address="203.0.113.7",
        client_user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
        client_id="visitor-1",
    )
    return [
        ForwardedEvent(
            event_id=f"evt-{i}",
            event_name="Purchase",
            event_time_ms=now_ms - 1000,
            action_source="website",
            event_source_url="https://shop.example/checkout",
            user=user,
            custom_data={"value": 49.5, "currency": "EUR", "content_ids": ["sku-1", "sku-2"]},
            gateway_id="demo",
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    batch = events(args.events, now_ms)
    print(f"{'platform':<10} {'events/s':>12} {'us/event':>10} {'requests':>9} {'body bytes':>12}")
    for kind, platform in PLATFORMS.items():
        config = platform.check_config(CONFIGS[kind])
        status, answer = SUCCESS[kind]
        rates = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            requests = platform.build_requests(config, batch, now_ms=now_ms)
            for _request in requests:
                platform.judge(status, answer, {})
            rates.append(args.events / (time.perf_counter() - started))
        rate = statistics.median(rates)
        size = sum(len(r.body) for r in requests)
        print(f"{kind:<10} {rate:>12,.0f} {1e6 / rate:>10.1f} {len(requests):>9} {size:>12,}")


if __name__ == "__main__":
    main()
