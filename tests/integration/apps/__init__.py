"""Tiny ASGI apps for corral's integration tests, run with `--app-dir tests/integration`.

Plain ASGI callables, no framework, so that workers boot fast.
"""
