"""PULL: poll a PACS with C-FIND, retrieve stable series with C-MOVE/C-GET, upload."""
