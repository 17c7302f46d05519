"""``make demo``: map the bundled sample studies and print where each would land.

(The PUSH agent turns this into the full ingest demo: fwlite + agent + storescu.)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fwmapping import MappingConfig, map_dataset, policy_allows, read_header

from .samples import SAMPLES, write_study


def main() -> int:
    config = MappingConfig()
    with tempfile.TemporaryDirectory(prefix="fwagent-demo-") as tmp:
        for sample in SAMPLES:
            paths = write_study(Path(tmp) / sample.description, sample)
            ds = read_header(paths[0])
            meta = map_dataset(ds, config)
            where = "opted out: not uploaded"
            if policy_allows(ds, config):
                where = f"{meta['group']['_id']}/{meta['project']['label']}/"
                where += f"{meta['session']['subject']['label']}/{meta['session']['label']}"
            print(f"{sample.patient_id!r:30} ({sample.why})\n    -> {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
