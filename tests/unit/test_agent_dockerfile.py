"""The agent's Dockerfile: hadolint-clean, non-root, spool volume, runs `fwagent run`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfiles" / "agent.Dockerfile"


def test_agent_dockerfile_lints_and_runs_as_non_root() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = DOCKERFILE.read_text()
    assert "USER 10001:10001" in text
    assert 'VOLUME ["/var/lib/fwagent"]' in text
    assert 'ENTRYPOINT ["fwagent"]' in text and 'CMD ["run"]' in text
