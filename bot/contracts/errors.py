"""Errors named for what happens next.

`BadInput` -> reject (HTTP 4xx or the dead-letter topic); `TransientError` -> retry;
`ConfigError` -> fail at start-up with one clear line. Messages say what was wrong and what to do.
"""

from __future__ import annotations


class ItffError(Exception):
    """Base of every error ITFF raises on purpose."""


class BadInput(ItffError):  # noqa: N818 - named for the action, as the house style asks
    """The input is wrong; retrying it unchanged will fail again."""


class TransientError(ItffError):
    """A dependency is unavailable for now; the same call may succeed later."""


class ConfigError(ItffError):
    """The configuration is invalid; the process must not start."""


class NotFound(BadInput):
    """A symbol, model or artifact that was asked for does not exist."""


class IntegrityError(ItffError):
    """An artifact or manifest failed verification; it must never be loaded."""
