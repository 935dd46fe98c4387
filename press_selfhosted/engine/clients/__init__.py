"""Clients of the infrastructure: Docker hosts and their exec, MariaDB, the image registry, S3, Traefik's
files and ACME store, the proxy's containers, the platform CA, DNS. They know nothing of Press's jobs."""
