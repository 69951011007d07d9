"""Country from an IP address at ingest, before the address is hashed: ISO 3166 alpha-2, or None.

`geoip2fast` ships its own country database inside the package (no download, no account), and
looks an address up in a few microseconds. Loopback, private and unknown addresses give None.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from geoip2fast import GeoIP2Fast

logger = logging.getLogger(__name__)


@functools.cache
def _database() -> GeoIP2Fast:
    return GeoIP2Fast(verbose=False)


def warm() -> None:
    """Load the database now (about 0.1 s) rather than on the first event; call from a worker thread."""
    _database()


def country_of(ip: str | None) -> str | None:
    """The country code of `ip`, or None for a missing, private or unknown address."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if not address.is_global:
        return None
    try:
        code = _database().lookup(str(address)).country_code
    except Exception:  # the library's own errors for odd input: unknown is the honest answer
        logger.debug("geo-IP lookup failed for an address", exc_info=True)
        return None
    return code if isinstance(code, str) and len(code) == 2 and code.isalpha() else None
