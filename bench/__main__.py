"""``python -m bench``: run every bench/bench_*.py ``main()`` in turn."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path


def main() -> int:
    failed = 0
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        name = f"bench.{path.stem}"
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(name).main()
        except Exception as exc:  # noqa: BLE001 - one broken bench must not hide the others
            failed += 1
            traceback.print_exc()
            print(f"== {name} FAILED: {exc}", flush=True)
        except SystemExit as exc:  # pytest.skip from peers.require, or an explicit exit
            print(f"== {name} skipped: {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
