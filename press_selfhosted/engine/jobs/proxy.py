"""Press's proxy jobs on a container Proxy Server (Add Site to Upstream, Add Host to Proxy, ...): each
step reads the proxy's routes and files (``engine.clients.proxy``) and writes only what differs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import docker

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import acme, site_router, traefik
from press_selfhosted.engine.clients.proxy import FRONT_PORT, ROOT, Proxy, ProxySettings
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.clients.site_router import SiteRoute
from press_selfhosted.engine.clients.traefik import HostRoute
from press_selfhosted.engine.errors import HostTaken, SiteNotOnProxy, ValidationError
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.validation import validate_fqdn


def _upstream(ctx: StepContext) -> str:
	return ctx.payload.get("path_args", {}).get("upstream", "")


def _site_of_path(ctx: StepContext) -> str:
	return validate_fqdn(ctx.job.site or ctx.payload.get("path_args", {}).get("site"), "site")


CERTIFICATE_KEYS = ("fullchain.pem", "chain.pem", "privkey.pem")


def _certificate_sent(certificate: object) -> bool:
	"""Whether Press's payload holds a certificate: it sends the keys with empty values when its TLS
	Certificate has none (one the proxy's ACME resolver obtains); a stored key is masked, never empty."""
	return isinstance(certificate, dict) and any(certificate.get(key) for key in CERTIFICATE_KEYS)


def _certified_by_acme(proxy: Proxy, host: HostRoute) -> None:
	"""A host Press sent without a certificate is certified by the proxy's resolver: refused when there
	is none, or for a wildcard (HTTP-01 cannot prove one)."""
	if host.site is None:
		raise ValidationError(
			"certificate",
			host.name,
			"a wildcard's certificate cannot be obtained by HTTP-01, and none was sent",
			"send the wildcard's TLS Certificate, or choose DNS-01 for its root domain",
		)
	if proxy.cert_resolver is None:
		raise ValidationError(
			"certificate",
			host.name,
			f"no certificate was sent, and proxy server {proxy.server.name} has no ACME resolver to obtain one",
			f"issue the domain's TLS Certificate in Press and retry, or set {acme.CONFIG_EMAIL} in the "
			"site config so that the proxy obtains it by HTTP-01",
		)


def _certificate_files(host: HostRoute, certificate: dict, private_key: str, field: str) -> dict:
	"""Path → (content, mode) of a host's certificate from Press's payload, refused when incomplete."""
	chains = {key: certificate.get(key) for key in ("fullchain.pem", "chain.pem")}
	for key, value in chains.items():
		if not value or "BEGIN CERTIFICATE" not in value:
			raise ValidationError(
				f"{field}.{key}",
				value,
				"a PEM certificate is required",
				"send the TLS Certificate's chain",
			)
	if "PRIVATE KEY" not in (private_key or ""):
		raise ValidationError(
			f"{field}.privkey.pem",
			"",
			"a PEM private key is required",
			"check the TLS Certificate's private key",
			show_value=False,
		)
	paths = traefik.certificate_files(host)
	files = {paths[key]: (value.encode(), 0o644) for key, value in chains.items()}
	files[paths["privkey.pem"]] = (private_key.encode(), 0o600)
	return files


def _install_certificate(ctx: StepContext, proxy: Proxy, host: HostRoute, files: dict) -> bool:
	"""The host's certificate ``files`` and route written, unless the proxy holds exactly them (False);
	written, they wait for the caller's bump of the generation."""
	route = {proxy.dynamic_path(host.file_name): (traefik.render(host).encode(), 0o644)}
	if proxy.holds({**files, **route}):
		ctx.log(f"the proxy holds this certificate and route of {host.name} already")
		return False
	ctx.log(f"writing the certificate of {host.name} into {host.certificate_directory}, and {host.file_name}")
	proxy.write_unpublished(ctx, {**files, **route})  # one write: no other job's bump falls between
	return True


def _remove_host_files(ctx: StepContext, proxy: Proxy, host: HostRoute) -> bool:
	"""The host's route and certificate removed, if the proxy holds either (False: it holds neither)."""
	gone = [proxy.dynamic_path(host.file_name), host.certificate_directory]
	if not proxy.holds_any(gone):
		ctx.log(f"the proxy holds no route nor certificate of its own for {host.name}")
		return False
	proxy.write_unpublished(ctx, {}, gone)
	return True


class ProxyJobs:
	"""The step functions of Press's proxy jobs on a container Proxy Server."""

	def __init__(self, settings: ProxySettings | Callable[[ContainerServer], ProxySettings]):
		# A callable is asked when a step runs, so a wrong setting (a TLS file that cannot be read)
		# fails the proxy job that needs it rather than every agent request; it is given the proxy
		# server (a root domain's DNS-01 settings are the server's).
		self.settings = settings

	def handlers(self) -> list[Handler]:
		def payload_site(ctx: StepContext) -> str:
			return validate_fqdn(ctx.payload.get("name"), "name")

		def host_site(ctx: StepContext) -> str | None:
			return None if str(ctx.payload.get("name")).startswith("*.") else ctx.payload.get("target")

		upstreams = "proxy/upstreams/{upstream}"
		return [
			handler(
				"Add Site to Upstream",
				"POST",
				f"{upstreams}/sites",
				[
					("Add Site File to Upstream Directory", self.add_site),
					("Reload NGINX", self.reload(payload_site)),
				],
			),
			handler(
				"Remove Site from Upstream",
				"DELETE",
				f"{upstreams}/sites/{{site}}",
				[("Remove Site File from Upstream Directory", self.remove_site)],
			),
			handler(
				"Update Site Status",
				"POST",
				f"{upstreams}/sites/{{site}}/status",
				[("Update Site File", self.update_status), ("Reload NGINX", self.reload(_site_of_path))],
			),
			handler(
				"Add Domain to Upstream",
				"POST",
				f"{upstreams}/domains",
				[
					("Add Site File to Upstream Directory", self.add_domain),
					("Reload NGINX", self.reload(payload_site)),
				],
			),
			handler(
				"Add Host to Proxy",
				"POST",
				"proxy/hosts",
				[("Add Host to Proxy", self.add_host), ("Reload NGINX", self.reload(host_site))],
			),
			handler(
				"Add Wildcard Hosts to Proxy",
				"POST",
				"proxy/wildcards",
				[
					("Add Wildcard Hosts to Proxy", self.add_wildcard_hosts),
					("Reload NGINX", self.reload(lambda ctx: None)),
				],
			),
			handler(
				"Rename Site on Upstream",
				"POST",
				f"{upstreams}/sites/{{site}}/rename",
				[
					("Rename Site File in Upstream Directory", self.rename_site),
					("Rename Host Directory", self.rename_host),
					("Rename Site in Host Directory", self.retarget_hosts),
					("Reload NGINX", self.reload_renamed),
				],
			),
			handler(
				"Remove Host from Proxy",
				"DELETE",
				"proxy/hosts/{host}",
				[("Remove Host from Proxy", self.remove_host)],
			),
		]

	def proxy(self, ctx: StepContext) -> Proxy:
		return self.proxy_of(ctx.docker, ctx.server)

	def proxy_of(self, client: docker.DockerClient, server: ContainerServer) -> Proxy:
		settings = self.settings(server) if callable(self.settings) else self.settings
		return Proxy.ensure(client, server, settings)

	def _existing(self, proxy: Proxy, site: str) -> SiteRoute:
		route = proxy.site(site)
		if route is None:
			raise SiteNotOnProxy(proxy.server.name, site)
		return route

	def add_site(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		site = validate_fqdn(ctx.payload.get("name"), "name")
		upstream = _upstream(ctx)
		app = ctx.topology.app_server_by_ip(upstream)
		bench = ctx.topology.bench_for_site(site)
		names = naming.BenchNames.of(app.container_prefix, bench)
		current = proxy.site(site)
		route = SiteRoute(
			site=site,
			upstream=upstream,
			app_server=app.name,
			bench=bench,
			front=f"{names.front}:{FRONT_PORT}",  # the front passes /socket.io on to its backend
			status=current.status if current else site_router.ACTIVE,
			domains=current.domains if current else (),
			acme_domains=current.acme_domains if current else (),
			cert_resolver=proxy.cert_resolver,
		)
		if route == current:
			ctx.log(f"the router already routes {site} to bench {bench}")
			return
		proxy.publish(ctx, route, current)

	def add_domain(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		site = validate_fqdn(ctx.payload.get("name"), "name")
		domain = validate_fqdn(ctx.payload.get("domain"), "domain")
		current = self._existing(proxy, site)
		route = current.with_domains(added=(domain,))
		if route == current:
			ctx.log(f"{domain} already routes to {site}")
			return
		proxy.publish(ctx, route, current)

	def update_status(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		status = ctx.payload.get("status")
		site_router.validate_status(status)
		extra = tuple(
			traefik.validate_host_name(d, "extra_domains") for d in ctx.payload.get("extra_domains") or ()
		)
		current = self._existing(proxy, _site_of_path(ctx))
		route = current.with_status(status, extra)
		if route == current:
			ctx.log(f"{route.site} is already {status} on this proxy")
			return
		proxy.publish(ctx, route, current)

	def remove_site(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		current = proxy.site(_site_of_path(ctx))
		if current is None:
			ctx.log("no route for this site: nothing to remove")
			return
		proxy.unpublish(ctx, current)
		proxy.verify(ctx, dict.fromkeys(current.hosts))

	# --- Rename Site on Upstream -----------------------------------------------------------------

	@staticmethod
	def _names(ctx: StepContext) -> tuple[str, str]:
		old, new = _site_of_path(ctx), validate_fqdn(ctx.payload.get("new_name"), "new_name")
		if old == new:
			raise ValidationError("new_name", new, "must differ from the site's name", "choose another name")
		return old, new

	def rename_site(self, ctx: StepContext) -> None:
		"""The site's routes under the new name (the old name's map file goes in the same change)."""
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		current = proxy.site(old)
		if current is None:
			if proxy.site(new) is None:
				raise SiteNotOnProxy(proxy.server.name, old)
			ctx.log(f"{old} is routed as {new} already")
			return
		sent = ctx.payload.get("domains")
		domains = current.domains if sent is None else tuple(validate_fqdn(d, "domains") for d in sent)
		kept = tuple(d for d in domains if d not in (old, new))
		route = dataclasses.replace(
			current, site=new, domains=kept, acme_domains=tuple(d for d in current.acme_domains if d in kept)
		)
		proxy.publish(ctx, route, current)

	def rename_host(self, ctx: StepContext) -> None:
		"""A certificate Press sent for the site's own name moves with it, as the Agent renames its
		host directory (Press issues one for the new name in its own time)."""
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		host = proxy.read(HostRoute(old).file_name)
		if host is None:
			if proxy.unpublished():  # run again after the old files went, before the bump
				proxy.bump(ctx)
			else:
				ctx.log(f"no certificate of its own for {old}")
			return
		renamed = HostRoute(new, site=new if host.site in (old, new) else host.site)
		ctx.run(
			proxy.traefik,
			[
				"sh",
				"-c",
				'rm -rf -- "$2" && cp -a -- "$1" "$2"',
				"sh",
				host.certificate_directory,
				renamed.certificate_directory,
			],
			ROOT,
		)
		proxy.publish_host(ctx, renamed)
		proxy.write_unpublished(ctx, {}, [proxy.dynamic_path(host.file_name), host.certificate_directory])
		proxy.bump(ctx)

	def retarget_hosts(self, ctx: StepContext) -> None:
		"""Custom domains that served the old name serve the new one."""
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		hosts = proxy.hosts_of(old)
		for host in hosts:
			proxy.publish_host(ctx, dataclasses.replace(host, site=new))
		if not hosts:
			ctx.log(f"no custom domain served {old}")
			return
		proxy.bump(ctx)

	def reload_renamed(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		proxy.verify(ctx, site_router.expected(self._existing(proxy, new), gone=(old,)))

	def add_host(self, ctx: StepContext) -> None:
		"""A custom domain (or a wildcard) with the certificate Press sent; a custom domain sent without
		one is routed to its site and certified by the proxy's ACME resolver (HTTP-01)."""
		proxy = self.proxy(ctx)
		host = HostRoute(
			name=traefik.validate_host_name(ctx.payload.get("name"), "name"),
			site=None if str(ctx.payload.get("name")).startswith("*.") else ctx.payload.get("target"),
		)
		certificate = ctx.payload.get("certificate")
		by_acme = not _certificate_sent(certificate)
		if by_acme:
			_certified_by_acme(proxy, host)
			files = {}
		else:
			files = _certificate_files(host, certificate, ctx.secret("privkey.pem"), "certificate")
		current = None
		if host.site:
			# refused before any certificate is written: the host would serve another site's name
			current = self._existing(proxy, host.site)
			owner = proxy.owner_of(host.name)
			if owner not in (None, host.site):
				raise HostTaken(proxy.server.name, host.name, owner, host.site)
		if by_acme:  # a certificate Press sent before would outrank the one the resolver obtains
			changed = _remove_host_files(ctx, proxy, host)
		else:
			changed = _install_certificate(ctx, proxy, host, files)
		if changed:
			proxy.bump(ctx)
		if current and (route := current.with_domains(added=(host.name,), acme=by_acme)) != current:
			proxy.publish(ctx, route, current)

	def add_wildcard_hosts(self, ctx: StepContext) -> None:
		"""Press's wildcard certificates of root domains (a JSON array: ``domain``, ``certificate``), each
		served by SNI for every site under its domain."""
		proxy = self.proxy(ctx)
		items = ctx.payload.get("items")
		if not isinstance(items, list):
			raise ValidationError(
				"body",
				type(items).__name__,
				"not a list of wildcard domains",
				"send Press's wildcard domains",
			)
		installed = False
		for index, item in enumerate(items):
			domain = validate_fqdn((item or {}).get("domain"), f"{index}.domain")
			host = HostRoute(name=f"*.{domain}", site=None)
			private_key = ctx.secret(f"{index}.certificate.privkey.pem")
			files = _certificate_files(
				host, item.get("certificate") or {}, private_key, f"{index}.certificate"
			)
			installed = _install_certificate(ctx, proxy, host, files) or installed
		if not items:
			ctx.log("no wildcard domain was sent: nothing to install")
		if installed:
			proxy.bump(ctx)

	def remove_host(self, ctx: StepContext) -> None:
		"""The host's certificate, and its route when it had one of its own or was certified by ACME (a
		domain Press routed with 'Add Domain to Upstream' keeps its route, as on Press's Agent)."""
		proxy = self.proxy(ctx)
		name = traefik.validate_host_name(ctx.payload.get("path_args", {}).get("host"), "host")
		host = proxy.read(HostRoute(name).file_name) or HostRoute(name)
		if _remove_host_files(ctx, proxy, host):
			proxy.bump(ctx)
		expected = {}
		owner = host.site or proxy.owner_of(name)
		current = proxy.site(owner) if owner else None
		if current and (name in current.acme_domains or (host.site and name in current.domains)):
			site = current.with_domains(removed=(name,))
			proxy.publish(ctx, site, current)
			expected = site_router.expected(site, gone=(name,))
		# once Traefik shows the generation, the certificate is gone
		proxy.verify(ctx, expected)

	def reload(self, site_of: Callable[[StepContext], str | None]) -> Callable[[StepContext], None]:
		"""Press's 'Reload NGINX': the router was reloaded and Traefik reloads by itself; this waits until
		both serve the job's change (for a wildcard certificate: Traefik's generation only)."""

		def step(ctx: StepContext) -> None:
			if ctx.payload.get("skip_reload"):
				ctx.log("skip_reload was asked: not waiting for the proxy")
				return
			site = site_of(ctx)
			proxy = self.proxy(ctx)
			proxy.verify(ctx, site_router.expected(self._existing(proxy, site)) if site else {})

		return step
