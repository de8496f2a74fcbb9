"""Real Lance datasets and LanceDB tables for the runtime tests (no mocks).

The data is deliberately awkward: 1,097 rows in 7 fragments of at most 157
rows, so no fragment, batch or rank boundary lines up with another.
"""

from __future__ import annotations

import os

import lance
import lancedb
import pytest

from tests.runtime.support import ROWS, make_table, write_dataset, write_images


@pytest.fixture(scope="session")
def lance_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = write_dataset(tmp_path_factory.mktemp("lance") / "items.lance")
    assert len(lance.dataset(uri).get_fragments()) == 7
    return uri


@pytest.fixture(scope="session")
def db_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("lancedb"))
    lancedb.connect(uri).create_table("items", make_table(0, ROWS))
    os.environ["LK_TEST_DB"] = uri  # read by tests.runtime.factories, in the workers too
    return uri


@pytest.fixture(scope="session", params=["blob_v1", "blob_v2", "hf"])
def images_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same pictures stored three ways: blob v1, blob v2, a Hugging Face Image."""
    return write_images(tmp_path_factory.mktemp(request.param) / "pictures.lance", request.param)


@pytest.fixture(scope="session")
def blob_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_images(tmp_path_factory.mktemp("blob") / "pictures.lance", "blob_v2")


@pytest.fixture(scope="session")
def mixed_uris(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three datasets for mixtures, ids disjoint: big 0..2999, small 10000..10599,
    tiny 20000..20099."""
    root = tmp_path_factory.mktemp("mixed")
    return {"big": write_dataset(root / "big.lance", 3000, 0),
            "small": write_dataset(root / "small.lance", 600, 10_000),
            "tiny": write_dataset(root / "tiny.lance", 100, 20_000)}


@pytest.fixture(scope="session")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A corpus of 400 texts (ids 0..399) in 5 fragments and a tokenizer trained on it."""
    from tests.runtime.text_support import corpus, train_tokenizer, write_corpus

    root = tmp_path_factory.mktemp("text")
    texts = corpus(400)
    return {"uri": write_corpus(root / "corpus.lance", texts),
            "tokenizer": train_tokenizer(root / "tokenizer.json", texts)}
