"""Shared fixtures: a private data cache for every test session."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_data_dir(tmp_path_factory):
    """Point SHEETLAB_DATA at a temporary directory so tests never touch a user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SHEETLAB_DATA", str(tmp_path_factory.mktemp("sheetlab-data")))
    yield
    mp.undo()
