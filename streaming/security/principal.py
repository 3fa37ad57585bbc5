"""Who is calling: the identity that authentication establishes and authorization checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streaming.security.rbac import Permission


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``roles`` are authoritative for this principal (a token may carry fewer roles than
    its user holds); ``permissions`` are direct grants on top of them.
    """

    subject: str
    roles: frozenset[str] = frozenset()
    permissions: frozenset[Permission] = frozenset()
    auth_method: str = "service"
    token_id: str | None = field(default=None, repr=False)


__all__ = ["Principal"]
