"""What importing bigEVY's entry points must not do."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_does_not_import_ray_before_it_knows_its_token() -> None:
    """Ray reads its auth mode from the environment when it is imported; `bigevy up` sets that
    only once it knows which token its Ray takes, so Ray must not come in with the CLI."""
    code = "import sys, bigevy.cli.main, bigevy.metrics; assert 'ray' not in sys.modules"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
