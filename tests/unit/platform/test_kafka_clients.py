"""What the settings give the services' Kafka clients (built, never connected)."""

import pytest

from libs.platform.messaging.kafka import create_producer
from libs.platform.settings import PlatformSettings


@pytest.mark.parametrize(("setting", "codec"), [("none", None), ("zstd", "zstd"), ("lz4", "lz4"), ("gzip", "gzip")])
async def test_the_relay_producer_compresses_its_batches_as_mgrid_kafka_compression_says(setting, codec):
    producer = create_producer(PlatformSettings(kafka_compression=setting), client_id="test")
    try:
        assert producer._compression_type == codec  # what every batch it sends is compressed with
    finally:
        await producer.stop()  # never started: only marks it closed


def test_an_unknown_codec_is_refused_by_name():
    with pytest.raises(ValueError, match="kafka_compression"):
        PlatformSettings(kafka_compression="brotli")
