"""The browser client's logic (chat/static/chat/js/) under Node's built-in
test runner: ordering by seq, de-duplication, optimistic sends, backoff,
the socket's reconnects and PKCE. Run here so that `make test` (pytest)
runs them too; alone: `node --test tests/js/`."""

import shutil
import subprocess

from devtools.servers import ROOT


def test_client_unit_tests_pass_in_node():
    node = shutil.which("node")
    assert node, "Node.js 20 is required (README: Quick start)"
    result = subprocess.run(
        [node, "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
