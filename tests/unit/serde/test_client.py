"""The HTTP registry client against an in-process httpx.MockTransport (no network)."""

import asyncio
import base64
import json
import random
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from streaming.config import RegistrySettings
from streaming.events import OrderPlaced
from streaming.fake_events import fake_events
from streaming.producer import EventProducer
from streaming.serde.client import SchemaRegistryClient, retry_delay_s
from streaming.serde.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SubjectNotFoundError,
)
from streaming.serde.schema import Schema, SchemaReference
from streaming.transport.memory import InMemoryTransport

SCHEMA = Schema('{"type":"string"}')
Handler = Callable[[httpx.Request], httpx.Response]


def _json(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def make_client(
    handler: Handler, *, clock: Callable[[], float] = lambda: 0.0, **settings: object
) -> tuple[SchemaRegistryClient, list[float]]:
    sleeps: list[float] = []

    async def record_sleep(delay: float) -> None:
        sleeps.append(delay)

    client = SchemaRegistryClient(
        RegistrySettings(url="http://registry.test", **settings),  # type: ignore[arg-type]
        transport=httpx.MockTransport(handler),
        clock=clock,
        sleep=record_sleep,
        rng=random.Random(7),
    )
    return client, sleeps


async def test_register_posts_schema_and_references_and_caches_the_id() -> None:
    handler = Recorder(_json(200, {"id": 11}))
    client, _ = make_client(handler)
    schema = Schema(
        '{"type":"record","name":"A","fields":[]}', references=(SchemaReference("x.M", "x.M", 2),)
    )
    assert await client.register_schema("orders-value", schema) == 11
    assert await client.register_schema("orders-value", schema) == 11
    assert len(handler.requests) == 1
    request = handler.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/subjects/orders-value/versions"
    assert request.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert json.loads(request.content) == {
        "schema": schema.schema_str,
        "references": [{"name": "x.M", "subject": "x.M", "version": 2}],
    }
    # the id -> schema cache is filled by registration
    assert await client.get_schema(11) == schema
    assert len(handler.requests) == 1


async def test_subject_names_are_url_quoted() -> None:
    handler = Recorder(_json(200, {"id": 1}))
    client, _ = make_client(handler)
    await client.register_schema("a/b c", SCHEMA)
    assert handler.requests[0].url.raw_path == b"/subjects/a%2Fb%20c/versions"


async def test_schema_by_id_is_fetched_once_even_when_asked_concurrently() -> None:
    handler = Recorder(
        _json(
            200,
            {
                "schema": '{"type":"int"}',
                "references": [{"name": "n", "subject": "s", "version": 1}],
            },
        )
    )
    client, _ = make_client(handler)
    results = await asyncio.gather(*(client.get_schema(5) for _ in range(10)))
    assert {r.schema_str for r in results} == {'{"type":"int"}'}
    assert results[0].references == (SchemaReference("n", "s", 1),)
    await client.get_schema(5)
    assert len(handler.requests) == 1


async def test_latest_version_is_cached_until_the_ttl_expires() -> None:
    now = [100.0]
    handler = Recorder(_json(200, {"subject": "s", "id": 3, "version": 2, "schema": '"int"'}))
    client, _ = make_client(handler, clock=lambda: now[0], latest_cache_ttl_s=30)
    first = await client.get_latest_version("s")
    assert (first.schema_id, first.version) == (3, 2)
    now[0] += 29
    await client.get_latest_version("s")
    assert len(handler.requests) == 1
    now[0] += 2
    await client.get_latest_version("s")
    assert len(handler.requests) == 2
    assert handler.requests[0].url.path == "/subjects/s/versions/latest"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_retriable_statuses_are_retried_with_backoff(status: int) -> None:
    handler = Recorder(
        _json(status, {"error_code": 50001, "message": "busy"}), _json(200, {"id": 4})
    )
    client, sleeps = make_client(handler)
    assert await client.register_schema("s", SCHEMA) == 4
    assert len(handler.requests) == 2
    assert len(sleeps) == 1 and 0.05 <= sleeps[0] <= 0.1


async def test_retries_are_bounded_by_max_retries() -> None:
    handler = Recorder(_json(503, {"error_code": 50003, "message": "down"}))
    client, sleeps = make_client(handler, max_retries=2)
    with pytest.raises(RegistryUnavailableError) as caught:
        await client.get_subjects()
    assert len(handler.requests) == 3
    assert len(sleeps) == 2
    assert (caught.value.status, caught.value.error_code) == (503, 50003)
    assert caught.value.retriable


async def test_network_errors_are_retried_then_raised_typed() -> None:
    handler = Recorder(httpx.ConnectError("refused"))
    client, sleeps = make_client(handler, max_retries=1)
    with pytest.raises(RegistryUnavailableError, match="REGISTRY_URL") as caught:
        await client.get_subjects()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(handler.requests) == 2 and len(sleeps) == 1


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    handler = Recorder(
        _json(429, {"message": "slow down"}, **{"Retry-After": "1.5"}), _json(200, ["a"])
    )
    client, sleeps = make_client(handler)
    assert await client.get_subjects() == ["a"]
    assert sleeps == [1.5]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (404, 40401, SubjectNotFoundError),
        (404, 40403, SchemaNotFoundError),
        (409, 409, IncompatibleSchemaError),
        (422, 42201, InvalidSchemaError),
        (401, 40101, RegistryAuthError),
        (400, 40000, RegistryError),
    ],
)
async def test_client_errors_map_to_typed_errors_without_retry(
    status: int, code: int, error: type[RegistryError]
) -> None:
    handler = Recorder(_json(status, {"error_code": code, "message": "nope"}))
    client, sleeps = make_client(handler)
    with pytest.raises(error) as caught:
        await client.register_schema("s", SCHEMA)
    assert type(caught.value) is error
    assert (caught.value.status, caught.value.error_code) == (status, code)
    assert "nope" in str(caught.value)
    assert len(handler.requests) == 1 and sleeps == []


async def test_non_json_error_bodies_still_give_a_typed_error() -> None:
    handler = Recorder(httpx.Response(404, text="<html>not here</html>"))
    client, _ = make_client(handler)
    with pytest.raises(RegistryError, match="not here") as caught:
        await client.get_schema(1)
    assert caught.value.error_code is None


async def test_basic_auth_is_sent_from_user_info() -> None:
    handler = Recorder(_json(200, []))
    client, _ = make_client(handler, basic_auth_user_info=SecretStr("alice:s3cret"))
    await client.get_subjects()
    expected = base64.b64encode(b"alice:s3cret").decode()
    assert handler.requests[0].headers["authorization"] == f"Basic {expected}"


async def test_bearer_token_is_sent() -> None:
    handler = Recorder(_json(200, []))
    client, _ = make_client(handler, bearer_token=SecretStr("tok"))
    await client.get_subjects()
    assert handler.requests[0].headers["authorization"] == "Bearer tok"


async def test_lookup_and_version_and_compatibility_use_confluent_paths() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/subjects/s" and request.method == "POST":
            return _json(200, {"subject": "s", "id": 9, "version": 3, "schema": '"int"'})
        if path == "/subjects/s/versions/3":
            return _json(200, {"subject": "s", "id": 9, "version": 3, "schema": '"int"'})
        if path == "/subjects/s/versions/latest" and request.method == "POST":
            raise AssertionError("compatibility must go to /compatibility")
        if path == "/compatibility/subjects/s/versions/latest":
            assert request.url.params["verbose"] == "true"
            return _json(200, {"is_compatible": False, "messages": ["reader field missing"]})
        if path == "/config/s":
            assert request.url.params["defaultToGlobal"] == "true"
            return _json(200, {"compatibilityLevel": "FULL"})
        return _json(404, {"error_code": 40401, "message": path})

    client, _ = make_client(handler)
    found = await client.lookup_schema("s", Schema('"int"'))
    assert (found.schema_id, found.version) == (9, 3)
    assert (await client.get_version("s", 3)).schema_id == 9
    result = await client.test_compatibility("s", Schema('"long"'))
    assert not result.is_compatible and result.messages == ("reader field missing",)
    assert await client.get_compatibility("s") == "FULL"


def test_backoff_grows_exponentially_stays_jittered_and_capped() -> None:
    rng = random.Random(1)
    delays = [retry_delay_s(n, base_s=0.1, cap_s=1.0, rng=rng) for n in range(8)]
    for n, delay in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 1.0
    assert len(set(delays)) == len(delays)


class GatedRegistry:
    """A registry over httpx that counts POSTs per path and holds them until released."""

    def __init__(self) -> None:
        self.posts: dict[str, int] = {}
        self.first_post = asyncio.Event()
        self.release = asyncio.Event()
        self.ids: dict[str, int] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            self.posts[path] = self.posts.get(path, 0) + 1
            self.first_post.set()
            await self.release.wait()
        subject = path.split("/")[2]
        schema_id = self.ids.setdefault(subject, len(self.ids) + 1)
        if path.endswith("/versions"):
            return _json(200, {"id": schema_id})
        return _json(200, {"id": schema_id, "version": 1, "subject": subject})


async def test_concurrent_first_sends_of_one_subject_share_one_registration() -> None:
    registry = GatedRegistry()
    client = SchemaRegistryClient(
        RegistrySettings(url="http://registry.test"), transport=httpx.MockTransport(registry)
    )
    transport = InMemoryTransport(auto_create_topics=True)
    async with client, EventProducer(transport, client) as producer:
        sends = [
            asyncio.create_task(producer.send("orders", event))
            for event in fake_events(OrderPlaced, 20, rng=random.Random(3))
        ]
        # tasks run in creation order: by the time this wakes, every send is waiting
        await registry.first_post.wait()
        registry.release.set()
        await asyncio.gather(*sends)
    assert "/subjects/orders-value/versions" in registry.posts
    assert registry.posts == dict.fromkeys(registry.posts, 1)
