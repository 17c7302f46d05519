"""The edge agent: receive DICOM, spool durably, map, upload to Flywheel."""
