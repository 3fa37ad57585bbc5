"""``@require_permission(ResourceType.X, Action.Y)``: the seed's permission decorator.

It guards methods and plain functions, sync and async. Who is asking: the call's
``user_id`` argument (``user_arg``) when the function has one and it is not ``None``,
else the ``user_id`` of the :class:`~streaming.context.ExecutionContext` bound in this
task; with neither the call is refused with :class:`~streaming.errors.PermissionDenied`.
Who decides: the ``rbac=`` given to the decorator, else ``self.rbac`` (``rbac_attr``) of
the bound object for a method such as the seed's ``TradingService.place_order``, else
one process-wide :class:`RoleBasedAccessControl` built from the settings
(``SECURITY_RBAC_POLICY_PATH``; see :func:`default_rbac`). A refusal is an
:class:`~streaming.security.errors.AccessDenied` (a ``PermissionDenied``), and the
function body never runs.

A sync function's check runs the RBAC coroutine to completion: directly with
``asyncio.run`` when no loop is running, else on a worker thread (the caller is sync,
so it blocks either way; the loop's other tasks wait for that check).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from streaming.context import current_execution_context
from streaming.errors import PermissionDenied
from streaming.security.rbac import Action, ResourceType, RoleBasedAccessControl

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def default_rbac() -> RoleBasedAccessControl:
    """The RBAC of functions that name none: policy from ``SECURITY_RBAC_POLICY_PATH``
    (an empty policy, refusing everything, when unset). ``default_rbac.cache_clear()``
    makes the next guarded call read the settings again."""
    return RoleBasedAccessControl()


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rbac-check") as pool:
        return pool.submit(asyncio.run, coro).result()


def guard(
    find: Callable[[inspect.BoundArguments], RoleBasedAccessControl],
    resource_type: ResourceType,
    action: Action,
    user_arg: str,
    resource_arg: str | None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The decorator behind both forms; ``find`` picks the RBAC for one call."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        if resource_arg is not None and resource_arg not in signature.parameters:
            raise TypeError(f"{func.__qualname__} has no parameter {resource_arg!r} to check")
        where = func.__qualname__

        async def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            user = bound.arguments.get(user_arg)
            if user is None:
                ctx = current_execution_context()
                user = ctx.user_id if ctx is not None else None
            if user is None:
                raise PermissionDenied(
                    f"{where} requires {action.value} on {resource_type.value}, but no user is "
                    f"known: pass {user_arg}= or run it inside an ExecutionContext with a user_id"
                )
            resource = None if resource_arg is None else str(bound.arguments[resource_arg])
            await find(bound)._require(str(user), resource_type, action, resource)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                await check(args, kwargs)
                return await cast(Callable[..., Coroutine[Any, Any, Any]], func)(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            _run_sync(check(args, kwargs))
            return func(*args, **kwargs)

        return sync_wrapper

    return decorate


def require_permission(
    resource_type: ResourceType,
    action: Action,
    *,
    rbac: RoleBasedAccessControl | None = None,
    user_arg: str = "user_id",
    resource_arg: str | None = None,
    rbac_attr: str = "rbac",
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse the call unless its user may ``action`` on ``resource_type`` (see module)."""

    def find(args: inspect.BoundArguments) -> RoleBasedAccessControl:
        if rbac is not None:
            return rbac
        owner = next(iter(args.arguments.values()), None)
        found = getattr(owner, rbac_attr, None)
        return found if isinstance(found, RoleBasedAccessControl) else default_rbac()

    return guard(find, resource_type, action, user_arg, resource_arg)


__all__ = ["default_rbac", "guard", "require_permission"]
