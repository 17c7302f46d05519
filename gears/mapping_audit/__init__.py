"""mapping-audit gear: is every DICOM acquisition where the connector's rules would put it?"""
