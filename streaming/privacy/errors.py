"""Errors of producer-side PII encryption (drawn in :mod:`streaming.errors`)."""

from __future__ import annotations

from streaming.errors import SecurityError


class SubjectKeysUnavailableError(SecurityError):
    """This process cannot confirm its copy of the subject keys is current, so it neither
    encrypts nor decrypts personal data (a shredded key must not be used past the bound)."""

    retriable = True


__all__ = ["SubjectKeysUnavailableError"]
