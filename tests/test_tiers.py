"""The tiers' guard (tests/conftest.py): what keeps a process out of ``make test-fast``."""

from __future__ import annotations

import pytest

from tests.conftest import _ProcessGuard


def test_a_test_not_marked_system_may_not_start_a_process(request):
    guard = _ProcessGuard()
    with pytest.raises(pytest.fail.Exception, match="started a process, subprocess.Popen"):
        with guard.watching(request.node):  # this test: not marked system
            with pytest.raises(RuntimeError, match="mark it @pytest.mark.system"):
                guard("subprocess.Popen", ("/bin/true", ["/bin/true"], None, None))
            # Swallowed by the code under test: the test fails all the same.
    guard("os.system", ("true",))  # between tests: allowed
    with guard.watching(request.node), guard.allowed():
        guard("os.posix_spawn", ("/bin/true", ["/bin/true"], {}))  # e.g. starting PostgreSQL
    with guard.watching(request.node):
        guard("open", ("/etc/hostname", "r", 0))  # not a process: not its business


@pytest.mark.system
def test_a_system_test_may(request):
    guard = _ProcessGuard()
    with guard.watching(request.node):
        guard("subprocess.Popen", ("/bin/true", ["/bin/true"], None, None))
