"""The index shard count: the deployed constant, lowered only inside an embedded run."""

import pytest

from paypipe.adapters import dynamo_index
from paypipe.embedded.runtime import EMBEDDED_INDEX_SHARDS, EmbeddedPipeline


def test_a_shard_count_holds_inside_and_is_restored_after() -> None:
    deployed = dynamo_index.INDEX_SHARDS
    ids = [f"p-{n}" for n in range(200)]
    with dynamo_index.index_shards(2):
        assert {dynamo_index.shard_key("k", i) for i in ids} == {"k#0", "k#1"}
    assert deployed == dynamo_index.INDEX_SHARDS
    assert len({dynamo_index.shard_key("k", i) for i in ids}) == deployed
    with pytest.raises(ValueError, match="at least one shard"), dynamo_index.index_shards(0):
        pass


def test_an_embedded_run_spreads_its_indexes_over_its_own_count_and_restores_the_deployed_one() -> None:
    deployed = dynamo_index.INDEX_SHARDS
    assert 1 < EMBEDDED_INDEX_SHARDS < deployed
    with EmbeddedPipeline():
        assert dynamo_index.INDEX_SHARDS == EMBEDDED_INDEX_SHARDS
    assert deployed == dynamo_index.INDEX_SHARDS
