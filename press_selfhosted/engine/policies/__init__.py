"""Decisions computed from what the clients read: backup retention, plan limits, registry cleanup, site
usage, certificate records. No Docker or job knowledge of their own beyond the clients they are given."""
