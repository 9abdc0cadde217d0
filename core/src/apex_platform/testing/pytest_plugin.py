"""pytest plugin of the Apex testing kit (registered through the `pytest11` entry point)."""
