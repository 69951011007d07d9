"""Seed 002's accounts and projects: who owns which gateways, the account key, and the routes that manage them."""

from .access import Access, Caller, gateway_for
from .service import ACCOUNT_KEY_PREFIX, DEFAULT_ACCOUNT_ID, Account, AccountService

__all__ = [
    "ACCOUNT_KEY_PREFIX",
    "DEFAULT_ACCOUNT_ID",
    "Access",
    "Account",
    "AccountService",
    "Caller",
    "gateway_for",
]
