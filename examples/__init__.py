"""Example apps for corral; `examples.app:app` is served from the repository root."""
