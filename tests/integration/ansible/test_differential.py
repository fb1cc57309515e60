"""Ansible is the oracle: each case in cases/ runs under ansible-playbook and under recipe (ssh platform),
twice each, against the same sshd; both must agree on every task's status, the files left in
remote_tmp_dir and the registered results both define.

A case is a task file as an Ansible user writes it (register + assert). Its first comment line may hold
settings: `# oracle: {gather_facts: true, xfail: "why recipe cannot run it yet"}`; an xfail is strict,
so the case fails loudly once recipe agrees with Ansible and the mark must go. Handlers are in
cases/<name>.handlers.yml.
"""
from __future__ import annotations

import pytest

from tests.ansible_oracle import compare
from tests.integration.ansible.conftest import cases

# the first test waits for the whole batch (every case, both tools, twice): minutes on a loaded 2-core machine
pytestmark = pytest.mark.timeout(1800)


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case.name, marks=marks, id=case.name)


@pytest.mark.parametrize("name", [_param(case) for case in cases()])
def test_same_outcome_as_ansible(name, differential):
    outcome = differential[name]
    assert outcome.ansible[0].ran, f"ansible-playbook did not run the case:\n{outcome.ansible_log}"
    failures = [f"{s.name}: {s.msg}" for s in outcome.ansible[0].statuses if s.status in ("failed", "unreachable")]
    assert outcome.item.fails or not outcome.ansible[0].failed, \
        "the case fails under Ansible itself: fix the case\n" + "\n".join(failures)
    comparison = compare(outcome)
    assert comparison.agrees, comparison.report


def test_every_case_is_a_task_file():
    """The harness found the cases, and each registers something to compare or leaves files."""
    found = cases()
    assert len(found) >= 15, [case.name for case in found]
    assert all(case.tasks for case in found)
