"""unsorted-mover gear: triage sessions out of the Unknown group and Unsorted projects."""
