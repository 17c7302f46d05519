"""Put a series on fwlite exactly as the agent would: dicomgen -> fwmapping -> zip -> upload.

Gear tests use :func:`seed_series` to create realistic Flywheel data through the agent's own
upload path (``fwagent.upload.upload_acquisition``) and the real flywheel-sdk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fwagent.package import zip_name, zip_series
from fwagent.upload import upload_acquisition
from fwmapping import MappingConfig, map_dataset, read_header

from .dicomgen import SeriesSpec, write_series


def seed_series(
    client: Any, tmp_path: Path, spec: SeriesSpec, config: MappingConfig | None = None
) -> dict[str, Any]:
    """Write ``spec`` with dicomgen, map it, zip it, upload it; return the resolved metadata."""
    config = config or MappingConfig()
    out = Path(tmp_path) / "seed" / spec.series_uid
    paths = write_series(out / "dicom", spec)
    metadata = map_dataset(read_header(paths[0]), config)
    zip_path = zip_series(paths, out / zip_name(metadata))
    return upload_acquisition(client, metadata, zip_path, config=config)
