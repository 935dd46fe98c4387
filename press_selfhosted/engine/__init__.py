"""The engine: everything that touches Docker, S3, the registry, MariaDB, TLS and Traefik.

It never imports frappe or press (tests/unit/test_boundary.py enforces it): the Frappe layer turns
documents into the dataclasses defined here and calls in.
"""
