"""Rules for records press_selfhosted cares about.

``records`` (rules for Press's Server, Proxy Server, Database Server, Site and Site Backup on container
servers) and ``infrastructure`` (Storage Configuration and Local Registry: rules and the mapping to
engine targets) are pure: they take plain values or dict-like documents and raise the engine's
``ValidationError``, so they are tested without Frappe. ``doc_events`` is the thin Frappe glue wired in
hooks.py.
"""
