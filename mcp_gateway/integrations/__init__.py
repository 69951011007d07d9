"""Forwarding confirmed events to ad and analytics platforms (issue 17)."""
