"""fwmapping: the one implementation of the connector's mapping rules.

DICOM headers -> Flywheel metadata and placement, shared by the edge agent and every gear
so that they can never disagree. See DESIGN.md section 2.
"""

from .config import OPT_IN, OPT_OUT, MappingConfig, Policy, SentTag, SettingError
from .fields import (
    HEADER_FIELDS,
    dataset_from_header,
    header_fields,
    header_info,
    header_text,
)
from .header import NotDicomError, read_dataset, read_first_header, read_header, text
from .mapping import acquisition_uid, is_siemens, map_dataset
from .names import capitalize, split_patient_name
from .paths import UnsafePathError, inside, safe_component
from .placement import FOLLOWED, GroupsAndProjects, Site, resolve_placement, site_placement
from .policy import (
    add_sent_tag,
    is_sent_by_flywheel,
    policy_allows,
    policy_allows_value,
    policy_field,
)
from .routing import (
    ROUTED,
    UNKNOWN,
    UNKNOWN_GROUP,
    UNSORTED,
    UNSORTED_PROJECT,
    Routing,
    format_routing,
    in_holding_area,
    parse_routing,
    parse_target,
)
from .timestamps import dicom_timestamp

__all__ = [
    "FOLLOWED",
    "HEADER_FIELDS",
    "OPT_IN",
    "OPT_OUT",
    "ROUTED",
    "UNKNOWN",
    "UNKNOWN_GROUP",
    "UNSORTED",
    "UNSORTED_PROJECT",
    "GroupsAndProjects",
    "MappingConfig",
    "NotDicomError",
    "Policy",
    "Routing",
    "SentTag",
    "SettingError",
    "Site",
    "UnsafePathError",
    "acquisition_uid",
    "add_sent_tag",
    "capitalize",
    "dataset_from_header",
    "dicom_timestamp",
    "format_routing",
    "header_fields",
    "header_info",
    "header_text",
    "in_holding_area",
    "inside",
    "is_sent_by_flywheel",
    "is_siemens",
    "map_dataset",
    "parse_routing",
    "parse_target",
    "policy_allows",
    "policy_allows_value",
    "policy_field",
    "read_dataset",
    "read_first_header",
    "read_header",
    "resolve_placement",
    "safe_component",
    "site_placement",
    "split_patient_name",
    "text",
]
