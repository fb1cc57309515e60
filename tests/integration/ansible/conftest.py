"""The differential tests' one batch: every case run by ansible-playbook and by recipe, twice each, against
the session's sshd, once for the whole session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.ansible_oracle import Batch, Item, Outcome, load_cases

CASES = Path(__file__).parent / "cases"


def cases() -> list[Item]:
    return load_cases(CASES)


@pytest.fixture(scope="session")
def differential(sshd, tmp_path_factory) -> dict[str, Outcome]:
    """Each case's outcome with both tools, by case name."""
    # Ansible's side is most of the time, mostly waiting on SSH: three shards side by side
    batch = Batch(sshd, tmp_path_factory.mktemp("differential"), shards=3)
    try:
        yield batch.run(cases())
    finally:
        batch.close()
        sys.stderr.write(f"\ndifferential batch, seconds per phase: {batch.timings}\n")
