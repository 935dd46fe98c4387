"""What the engine's handlers are built with, from the site config and the app's records: the job
types this agent runs, the job store, the proxy's Traefik, a Database Server's MariaDB, the builder,
benches' mounts.
Read when a request or a step needs them, so that a wrong value fails that job naming the key."""

from __future__ import annotations

import frappe

from press_selfhosted.engine import validation
from press_selfhosted.engine.agent import catalog
from press_selfhosted.engine.agent.store import StoreConfig
from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.clients.proxy import ProxySettings
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.jobs.benches import BenchSettings
from press_selfhosted.glue import registry, root_domains


def all_handlers():
	# host folders a Bench Mount may use (none unless the operator lists them)
	roots = tuple(frappe.conf.get("press_selfhosted_bench_mount_roots") or ())
	return catalog.all_handlers(
		proxy_settings,
		registry.builder_settings(),
		benches=BenchSettings(mount_roots=roots),
		mariadb_image=mariadb_image,
	)


def store_config() -> StoreConfig:
	"""The agent's job store: the site's own database (the executor's bench and site locks live there)."""
	conf = frappe.conf
	return StoreConfig(
		host=conf.get("db_host") or "127.0.0.1",
		port=int(conf.get("db_port") or 3306),
		user=conf.get("db_user") or conf.db_name,
		password=conf.db_password,
		database=conf.db_name,
	)


def mariadb_image() -> str:
	"""What a container Database Server runs (site config, so that it can name the Local Registry)."""
	return frappe.conf.get("press_selfhosted_mariadb_image") or "mariadb:10.6"


# where each container proxy's Traefik listens on its host (site config keys)
PROXY_BIND_ADDRESS = "press_selfhosted_proxy_bind_address"
PROXY_HTTP_PORT = "press_selfhosted_proxy_http_port"
PROXY_HTTPS_PORT = "press_selfhosted_proxy_https_port"


def proxy_settings(server: ContainerServer | None = None) -> ProxySettings:
	"""Traefik and the site router (nginx) of container proxy servers; images from the site config, so that
	an operator points them at the Local Registry. TLS of sites from the keys engine.clients.acme names: an
	ACME resolver and/or a default certificate; with ``server``, the DNS-01 challenge of its root domain
	(agent/root_domains.py). Read when a proxy step runs."""
	conf = frappe.conf
	resolver, certificate = acme.from_site_config(conf)
	dns, wildcard_domains = root_domains.dns_settings(server.name) if server else (None, ())
	return ProxySettings(
		traefik_image=frappe.conf.get("press_selfhosted_traefik_image") or "traefik:v3.1",
		router_image=frappe.conf.get("press_selfhosted_front_image") or "nginx:stable",
		bind_address=validation.validate_bind_address(
			conf.get(PROXY_BIND_ADDRESS) or "0.0.0.0", PROXY_BIND_ADDRESS
		),
		http_port=validation.validate_port(conf.get(PROXY_HTTP_PORT) or 80, PROXY_HTTP_PORT),
		https_port=validation.validate_port(conf.get(PROXY_HTTPS_PORT) or 443, PROXY_HTTPS_PORT),
		acme=resolver,
		default_certificate=certificate,
		dns_challenge=dns,
		wildcard_domains=wildcard_domains,
	)
