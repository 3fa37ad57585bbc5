"""Two registry processes on one ``_schemas`` topic agree and never collide on ids."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx

from streaming.testing import eventually
from tests.integration.registry.conftest import ServerFactory


def schema(n: int) -> str:
    return json.dumps(
        {"type": "record", "name": f"Evt{n}", "fields": [{"name": f"f{n}", "type": "long"}]}
    )


async def test_concurrent_registrations_through_two_instances(
    start_registry: ServerFactory,
) -> None:
    one = await start_registry()
    two = await start_registry()
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=60) as a,
        httpx.AsyncClient(base_url=two.url, timeout=60) as b,
    ):
        assert (await a.put("/config", json={"compatibility": "NONE"})).status_code == 200
        clients = [a, b]

        async def register(n: int) -> tuple[int, int]:
            # 100 distinct schemas over 10 subjects; every 10th re-registers a schema from the
            # other instance under a new subject, which must reuse its id
            body = {"schema": schema(n if n % 10 else n + 1)}
            r = await clients[n % 2].post(f"/subjects/two-{n % 10}/versions", json=body)
            assert r.status_code == 200, r.text
            return n, r.json()["id"]

        results = dict(await asyncio.gather(*(register(n) for n in range(100))))

        ids_by_schema: dict[str, set[int]] = {}
        for n, schema_id in results.items():
            ids_by_schema.setdefault(schema(n if n % 10 else n + 1), set()).add(schema_id)
        assert all(len(ids) == 1 for ids in ids_by_schema.values()), "one schema got two ids"
        distinct = {next(iter(ids)) for ids in ids_by_schema.values()}
        assert len(distinct) == len(ids_by_schema), "two schemas share one id"
        assert Counter(results.values()).most_common(1)[0][1] <= 2

        # both instances serve identical listings (after the slower one has caught up)
        await eventually(
            lambda: one.store.state.snapshot() == two.store.state.snapshot(),
            timeout_s=30,
            what="the instances to converge",
        )
        for path in ["/subjects"] + [f"/subjects/two-{k}/versions" for k in range(10)]:
            assert (await a.get(path)).json() == (await b.get(path)).json()
        for schema_id in sorted(distinct):
            assert (await a.get(f"/schemas/ids/{schema_id}")).json() == (
                await b.get(f"/schemas/ids/{schema_id}")
            ).json()
