"""The lab's cross-component tests: integration/, e2e/, ci/, and their helpers in support/.

A regular package, so `tests.support` always means this folder: the editable installs put
each component's folder on sys.path, and their own `tests/` folders are namespace portions.
"""
