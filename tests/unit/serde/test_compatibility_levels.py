"""The compatibility level names exist once; the registry's enum and API follow them."""

import json

from streaming.registry.model import CompatibilityLevel
from streaming.registry.openapi import openapi_document
from streaming.serde import COMPATIBILITY_LEVELS
from streaming.serde.compatibility import LEVELS


def test_the_registry_enum_client_and_api_share_one_list() -> None:
    assert tuple(level.value for level in CompatibilityLevel) == LEVELS
    assert COMPATIBILITY_LEVELS is LEVELS
    assert json.dumps(list(LEVELS)) in json.dumps(openapi_document())
