from __future__ import annotations

from shared.settings import QdrantSettings, SearchSettings, Settings


def test_separate_worker_yields_only_with_the_embedded_store() -> None:
    from services.search.worker import yields_to_api

    embedded = Settings()
    server = Settings(qdrant=QdrantSettings(url="http://qdrant:6333"))
    off = Settings(search=SearchSettings(inprocess_worker=False))
    assert yields_to_api(embedded, "embeddings@host")
    assert not yields_to_api(embedded, "search-api@host")  # the API's own consumer keeps the queue
    assert not yields_to_api(server, "embeddings@host")
    assert not yields_to_api(off, "embeddings@host")
