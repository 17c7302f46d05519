"""Metadata for a de-identified acquisition: where it goes from the original header, what
it is called from the de-identified one.

The routing string lives in a header field the profile may well remove (PatientID), so
group, project and the routing record come from the original; so do the subject and
session labels the routing string names explicitly (the site typed them; routing strings
must not carry PHI). Everything else Flywheel stores (labels taken from the header,
names, uids, timestamps) comes from the de-identified header.
"""

from __future__ import annotations

from typing import Any

from fwmapping import MappingConfig, map_dataset, parse_routing
from pydicom.dataset import Dataset


def map_deidentified(
    original: Dataset, deidentified: Dataset, config: MappingConfig
) -> dict[str, Any]:
    """The uid-upload metadata of the acquisition, placed by the original header."""
    placed = map_dataset(original, config)
    metadata = map_dataset(deidentified, config)
    metadata["group"] = placed["group"]
    metadata["project"] = placed["project"]
    metadata["routing"] = placed["routing"]
    routing = parse_routing(placed["routing"]["value"])
    if routing.subject:
        metadata["session"]["subject"]["label"] = routing.subject
    if routing.session:
        metadata["session"]["label"] = routing.session
    return metadata
