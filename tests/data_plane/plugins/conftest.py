"""Fixtures the plugin tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dataplane import EchoProcess, start_echo


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoProcess]:
    """Run an echo upstream for the tests of one module."""
    with start_echo(tmp_path_factory.mktemp("echo")) as process:
        yield process
