"""fwlite: a local stand-in for Flywheel Core's REST API, for the demo and the tests."""
