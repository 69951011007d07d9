"""Integrations' secrets (access tokens, API secrets, signing secrets) encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) over the JSON of an integration's secret fields. The
key is `Settings.integrations_key` (`MCP_GATEWAY_INTEGRATIONS_KEY`: one or more comma-separated Fernet keys, the
first encrypting, all decrypting, so a key can be rotated); unset, the key file `integrations.key` in the data
directory (beside the SQLite file), created with mode 0600 at first start. The database alone never holds the
key: a copy of it without the key file or the setting reveals no secret.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..errors import GatewayError

logger = logging.getLogger(__name__)

KEY_FILE_NAME: Final = "integrations.key"


class SecretsKeyError(GatewayError):
    """The stored secrets cannot be decrypted with the configured key (another key, or a corrupted value)."""


def key_file_key(path: Path) -> bytes:
    """The key in `path`, created (mode 0600, never overwritten) when there is none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as file:
        file.write(key + b"\n")
    logger.info("created the integrations secrets key %s (mode 0600)", path)
    return key


class SecretBox:
    """Encrypts and decrypts one integration's secrets (a JSON object of strings). The keys are loaded at first
    use, so building an app creates no key file."""

    def __init__(self, load_keys: Callable[[], list[bytes]]) -> None:
        self._load_keys = load_keys
        self._fernet: MultiFernet | None = None

    @classmethod
    def from_settings(cls, configured: str | None, data_dir: Path) -> SecretBox:
        if configured:
            keys = [part.strip().encode() for part in configured.split(",") if part.strip()]
            return cls(lambda: keys)
        return cls(lambda: [key_file_key(data_dir / KEY_FILE_NAME)])

    def _cipher(self) -> MultiFernet:
        if self._fernet is None:
            try:
                self._fernet = MultiFernet([Fernet(key) for key in self._load_keys()])
            except ValueError as exc:
                raise SecretsKeyError(f"the integrations key is not a Fernet key: {exc}") from None
        return self._fernet

    def seal(self, secrets: dict[str, str]) -> str:
        return self._cipher().encrypt(json.dumps(secrets, sort_keys=True).encode()).decode("ascii")

    def open(self, token: str) -> dict[str, str]:
        cipher = self._cipher()
        try:
            plain = cipher.decrypt(token.encode("ascii"))
        except (InvalidToken, ValueError) as exc:
            raise SecretsKeyError("cannot decrypt an integration's secrets: is this the integrations key?") from exc
        secrets: dict[str, str] = json.loads(plain)
        return secrets
