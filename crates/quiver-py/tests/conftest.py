"""Shared fixtures: a fresh store path per test."""

import pathlib

import pytest


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    """A path inside the test's temporary directory where no store exists yet."""
    return tmp_path / "store"
