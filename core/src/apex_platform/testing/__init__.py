"""The Apex testing kit: real embedded servers as pytest fixtures, fake-vendor helpers."""
