"""What every gear shares: report files and Flywheel paths."""
