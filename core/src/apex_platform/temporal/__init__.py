"""The Temporal layer: workflows (what and when), activities (how), worker assembly."""
