"""dicom-send gear: send DICOM from Flywheel to a DICOM peer (PACS), tagged as sent by Flywheel."""
