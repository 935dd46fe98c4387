"""Proxy jobs on a real Traefik and site router: requests go through Traefik's published port with Host
headers, through the router, to a real bench front (the production configuration) + backend pair; the
Traefik files are checked against the Traefik schema and the router's map files read back. The
topology and secret source are fakes of Press's documents (tests/proxy_helpers)."""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import io
import json
import os
import socket
import ssl
import tarfile
import time
import uuid

import docker.errors
import jsonschema
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fakes import PressRecords, Secrets
from proxy_helpers import (
	container_server,
	proxy_settings,
	remove_servers,
	run_job,
	self_signed,
	start_bench_pair,
)
from references import schema

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients import platform_ca, site_router, traefik
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.proxy import UNPUBLISHED, Proxy, ProxySettings
from press_selfhosted.engine.errors import (
	HostTaken,
	NotOwned,
	RoutesNotLoaded,
	SiteNotOnProxy,
	ValidationError,
)
from press_selfhosted.engine.jobs.handlers import JobRecord, JobRequest, StepContext, index
from press_selfhosted.engine.jobs.proxy import ProxyJobs

SCHEMA = schema("traefik-v3-file-provider.json")
UPSTREAM = "10.20.0.7"
SITE = "site1.example.com"
BENCH = "bench-0001"
WS_BENCH = "bench-ws"


@pytest.fixture(scope="module")
def cluster(endpoints, docker_client):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	network = f"{prefix}-net"
	app = container_server(endpoints, f"{prefix}-app.local", "Server", prefix, network, private_ip=UPSTREAM)
	proxy_server = container_server(endpoints, f"{prefix}-proxy.local", "Proxy Server", prefix, network)
	docker_client.networks.create(network, labels=naming.labels(app.name, "network"))
	try:
		start_bench_pair(docker_client, endpoints, app, BENCH)
		start_bench_pair(docker_client, endpoints, app, WS_BENCH, websocket=True)
		settings = proxy_settings(endpoints)
		jobs = ProxyJobs(settings)
		topology = PressRecords([app, proxy_server], site_benches={SITE: BENCH})
		yield {
			"client": docker_client,
			"server": proxy_server,
			"settings": settings,
			"handlers": index(jobs.handlers()),
			"handler_list": jobs.handlers(),
			"topology": topology,
			"proxy": Proxy.ensure(docker_client, proxy_server, settings),
		}
	finally:
		remove_servers(docker_client, [app.name, proxy_server.name], network)


def job(cluster, job_type: str, payload: dict, site: str | None = None, secrets: Secrets | None = None):
	return run_job(
		cluster["handlers"][job_type],
		cluster["server"],
		cluster["client"],
		cluster["topology"],
		payload,
		site=site,
		secrets=secrets,
	)


def get(cluster, host: str, path: str = "/", headers: dict | None = None) -> requests.Response:
	port = cluster["proxy"].published_port("80/tcp")
	return requests.get(
		f"http://127.0.0.1:{port}{path}", headers={"Host": host, **(headers or {})}, timeout=10
	)


def container_file(container, path: str) -> str | None:
	try:
		stream, _ = container.get_archive(path)
	except docker.errors.NotFound:
		return None
	with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
		return archive.extractfile(archive.getmembers()[0]).read().decode()


def route_file(cluster, name: str) -> str | None:
	return container_file(cluster["proxy"].traefik, f"{traefik.DYNAMIC_DIRECTORY}/{name}")


def map_file(cluster, host: str) -> str | None:
	"""The router's map file of a host name."""
	return container_file(cluster["proxy"].router, f"{site_router.DIRECTORY}/{site_router.map_file(host)}")


def valid_route_file(cluster, name: str) -> dict:
	document = yaml.safe_load(route_file(cluster, name))
	jsonschema.validate(document, SCHEMA)
	return document


def _received(connection) -> bytes:
	chunk = connection.recv(4096)
	if not chunk:
		raise ConnectionError("the proxy closed the websocket")
	return chunk


def websocket_echo(cluster, host: str, message: str, tls: bool = False) -> tuple[str, str]:
	"""A websocket opened on ``/socket.io/`` through Traefik (HTTPS when ``tls``): the handshake's
	status line and the echo of one text frame."""
	port = cluster["proxy"].published_port("443/tcp" if tls else "80/tcp")
	raw = socket.create_connection(("127.0.0.1", port), timeout=10)
	if tls:
		context = ssl.create_default_context()
		context.check_hostname = False
		context.verify_mode = ssl.CERT_NONE
		raw = context.wrap_socket(raw, server_hostname=host)
	with raw as connection:
		key = base64.b64encode(os.urandom(16)).decode()
		connection.sendall(
			(
				"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
				f"Host: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
				f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
			).encode()
		)
		answer = b""
		while b"\r\n\r\n" not in answer:
			answer += _received(connection)
		head, _, rest = answer.partition(b"\r\n\r\n")
		mask = os.urandom(4)
		payload = message.encode()
		masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
		connection.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
		while len(rest) < 2 or len(rest) < 2 + rest[1]:
			rest += _received(connection)
		return head.split(b"\r\n")[0].decode(), rest[2 : 2 + rest[1]].decode()


def served_certificate(cluster, server_name: str) -> bytes:
	port = cluster["proxy"].published_port("443/tcp")
	context = ssl.create_default_context()
	context.check_hostname = False
	context.verify_mode = ssl.CERT_NONE
	with (
		socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
		context.wrap_socket(raw, server_hostname=server_name) as tls,
	):
		return tls.getpeercert(binary_form=True)


def served_within(cluster, server_name: str, condition, timeout: float = 90) -> bool:
	"""Whether the certificate served for ``server_name`` meets ``condition`` within ``timeout``."""
	deadline = time.monotonic() + timeout
	while not condition(served_certificate(cluster, server_name)):
		if time.monotonic() > deadline:
			return False
		time.sleep(0.3)
	return True


def test_ensure_is_idempotent_and_labelled(cluster):
	client, server = cluster["client"], cluster["server"]
	first = cluster["proxy"]
	again = Proxy.ensure(client, server, cluster["settings"])
	assert again.traefik.id == first.traefik.id
	traefik_container = client.containers.get(f"{server.container_prefix}-traefik")
	assert traefik_container.labels[naming.SERVER] == server.name
	assert traefik_container.labels[naming.ROLE] == "traefik"
	assert server.network in traefik_container.attrs["NetworkSettings"]["Networks"]
	bindings = traefik_container.attrs["HostConfig"]["PortBindings"]
	assert {binding[0]["HostIp"] for binding in bindings.values()} == {"127.0.0.1"}
	assert "8080/tcp" not in bindings  # the API is never published
	args = traefik_container.attrs["Args"]
	assert "--providers.file.directory=/etc/traefik/dynamic" in args and "--providers.file.watch=true" in args
	router = client.containers.get(f"{server.container_prefix}-router")
	assert router.status == "running" and router.labels[naming.ROLE] == "proxy-router"
	assert router.attrs["HostConfig"]["PortBindings"] in (None, {})  # reached through Traefik only
	assert (
		client.volumes.get(f"{server.container_prefix}-router").attrs["Labels"][naming.SERVER] == server.name
	)
	document = valid_route_file(cluster, traefik.SITES_FILE)
	assert document["http"]["services"]["sites"]["loadBalancer"]["servers"] == [
		{"url": f"http://{server.container_prefix}-router:80"}
	]
	for container, capabilities in ((traefik_container, ["NET_BIND_SERVICE"]), (router, None)):
		host = container.attrs["HostConfig"]
		assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
		assert host["PidsLimit"] == 512
		if capabilities:
			assert host["CapAdd"] == capabilities


def test_an_operators_container_of_the_same_name_is_never_replaced(endpoints, docker_client):
	"""A Traefik the operator runs as ``<prefix>-traefik`` (no press labels) is left alone, named."""
	prefix = f"o{uuid.uuid4().hex[:7]}"
	network = f"{prefix}-net"
	server = container_server(endpoints, f"{prefix}-proxy.local", "Proxy Server", prefix, network)
	docker_client.networks.create(network, labels=naming.labels(server.name, "network"))
	theirs = docker_client.containers.run(
		endpoints["images"]["base"], ["sleep", "300"], name=f"{prefix}-traefik", detach=True
	)
	try:
		settings = proxy_settings(endpoints)
		with pytest.raises(NotOwned, match=f"container {prefix}-traefik .* is not one press_selfhosted made"):
			Proxy.ensure(docker_client, server, settings)
		theirs.reload()
		assert (
			theirs.status == "running" and docker_client.containers.get(f"{prefix}-traefik").id == theirs.id
		)
	finally:
		theirs.remove(force=True)
		remove_servers(docker_client, [server.name], network)


def test_a_site_through_its_whole_proxy_life(cluster):
	# Press sends New Site and Add Site to Upstream together: the site directory may not exist yet.
	_, log = job(cluster, "Add Site to Upstream", {"name": SITE, "path_args": {"upstream": UPSTREAM}})
	assert any("the proxy serves 1 host change(s)" in line for line in log)
	route = site_router.parse(map_file(cluster, SITE), "map")
	# /socket.io too goes to the front (it passes it on): the proxy reaches no backend
	assert route.front == f"{cluster['server'].container_prefix}-{BENCH}-front:80"
	assert map_file(cluster, SITE).endswith(f'{SITE} "activated {SITE} {route.front}";\n')
	answer = get(cluster, SITE)
	assert answer.status_code == 200 and answer.json() == {"site": SITE}
	assert get(cluster, SITE, "/socket.io/?EIO=4").json() == {"site": SITE}
	# a visitor cannot pose as another site: the router sets the header from its map
	assert get(cluster, SITE, headers={"X-Frappe-Site-Name": "other.example.com"}).json() == {"site": SITE}

	for state, code, text in (("suspended", 503, "suspended"), ("deactivated", 200, "deactivated")):
		job(cluster, "Update Site Status", {"status": state, "path_args": {"upstream": UPSTREAM}}, site=SITE)
		assert site_router.parse(map_file(cluster, SITE), "map").status == state
		page = get(cluster, SITE)
		assert page.status_code == code, state
		assert text in page.text.lower() and "site" not in page.headers.get("content-type", "json")
		assert get(cluster, SITE, "/socket.io/?EIO=4").status_code == code  # nothing reaches the bench

	job(
		cluster, "Update Site Status", {"status": "activated", "path_args": {"upstream": UPSTREAM}}, site=SITE
	)
	assert get(cluster, SITE).json() == {"site": SITE}

	job(
		cluster,
		"Add Domain to Upstream",
		{"name": SITE, "domain": "shop.example.org", "path_args": {"upstream": UPSTREAM}},
	)
	assert get(cluster, "shop.example.org").json() == {"site": SITE}  # a custom domain maps to its site
	assert get(cluster, "shop.example.org", "/socket.io/?EIO=4").json() == {"site": SITE}
	assert cluster["proxy"].owner_of("shop.example.org") == SITE

	# a second run of the same job converges without writing again
	_, log = job(
		cluster,
		"Add Domain to Upstream",
		{"name": SITE, "domain": "shop.example.org", "path_args": {"upstream": UPSTREAM}},
	)
	assert any("already routes" in line for line in log)

	job(cluster, "Remove Site from Upstream", {"path_args": {"upstream": UPSTREAM}}, site=SITE)
	assert map_file(cluster, SITE) is None and map_file(cluster, "shop.example.org") is None
	assert get(cluster, SITE).status_code == 404
	assert get(cluster, "shop.example.org").status_code == 404
	_, log = job(cluster, "Remove Site from Upstream", {"path_args": {"upstream": UPSTREAM}}, site=SITE)
	assert log == ["no route for this site: nothing to remove"]


def test_socketio_websockets_pass_through_traefik_the_router_and_the_front(cluster):
	site, domain = "live.example.com", "live.customer.test"
	cluster["topology"].site_benches[site] = WS_BENCH
	job(cluster, "Add Site to Upstream", {"name": site, "path_args": {"upstream": UPSTREAM}})
	job(
		cluster,
		"Add Domain to Upstream",
		{"name": site, "domain": domain, "path_args": {"upstream": UPSTREAM}},
	)
	for host in (site, domain):
		for tls in (False, True):
			status, echo = websocket_echo(cluster, host, "hello", tls=tls)
			assert status == "HTTP/1.1 101 Switching Protocols", (host, tls)
			assert echo == f"{site} hello", (host, tls)  # the site name reached the socketio server


def test_a_host_of_another_site_is_refused_with_its_owner(cluster):
	first, second, domain = "first.example.com", "second.example.com", "www.shared.test"
	for site in (first, second):
		cluster["topology"].site_benches[site] = BENCH
		job(cluster, "Add Site to Upstream", {"name": site, "path_args": {"upstream": UPSTREAM}})
	job(
		cluster,
		"Add Domain to Upstream",
		{"name": first, "domain": domain, "path_args": {"upstream": UPSTREAM}},
	)
	with pytest.raises(HostTaken, match=f"{domain} already routes to site {first}.*Fix: remove the domain"):
		job(
			cluster,
			"Add Domain to Upstream",
			{"name": second, "domain": domain, "path_args": {"upstream": UPSTREAM}},
		)
	chain, key = self_signed(domain)
	payload = {
		"name": domain,
		"target": second,
		"certificate": {"fullchain.pem": chain, "chain.pem": chain, "privkey.pem": "********"},
	}
	with pytest.raises(HostTaken, match=f"{domain} already routes to site {first}"):
		job(cluster, "Add Host to Proxy", payload, secrets=Secrets({"privkey.pem": key}))
	# nothing was written for the refused host, and it still serves its owner
	assert route_file(cluster, f"host_{traefik.route_id(domain)}.yml") is None
	assert get(cluster, domain).json() == {"site": first}
	assert cluster["proxy"].site(second).domains == ()


def test_custom_host_with_certificate(cluster):
	site, domain = "site2.example.com", "www.customer.test"
	cluster["topology"].site_benches[site] = BENCH
	job(cluster, "Add Site to Upstream", {"name": site, "path_args": {"upstream": UPSTREAM}})
	chain, key = self_signed(domain)
	payload = {
		"name": domain,
		"target": site,
		"certificate": {"fullchain.pem": chain, "chain.pem": chain, "privkey.pem": "********"},
	}
	_, log = job(cluster, "Add Host to Proxy", payload, secrets=Secrets({"privkey.pem": key}))
	assert key not in "\n".join(log)
	assert get(cluster, domain).json() == {"site": site}
	expected = x509.load_pem_x509_certificate(chain.encode()).public_bytes(serialization.Encoding.DER)
	assert served_within(cluster, domain, lambda served: served == expected)
	valid_route_file(cluster, f"host_{traefik.route_id(domain)}.yml")
	mode = cluster["proxy"].traefik.exec_run(
		["stat", "-c", "%a", f"{traefik.CERTIFICATES_DIRECTORY}/{traefik.route_id(domain)}/privkey.pem"]
	)
	assert mode.output.decode().strip() == "600"

	job(cluster, "Remove Host from Proxy", {"path_args": {"host": domain}})
	assert route_file(cluster, f"host_{traefik.route_id(domain)}.yml") is None
	assert served_within(cluster, domain, lambda served: served != expected)
	assert get(cluster, domain).status_code == 404
	assert get(cluster, site).json() == {"site": site}


def test_a_change_written_by_a_job_that_stopped_before_publishing_it_is_published_when_run_again(
	cluster, monkeypatch
):
	"""The worker dies after writing a host's certificate and route but before the bump of the generation
	(stood for by a bump that raises: a kill between two lines of one step cannot be placed from
	outside). Run again, the job finds the files in place and still publishes them; run a third time, it
	changes nothing. The same holds for a removal, and for a rename moving the site's own certificate."""
	site, renamed, domain = (
		"site-unpublished.example.com",
		"site-published.example.com",
		"www.unpublished.test",
	)
	cluster["topology"].site_benches[site] = BENCH
	job(cluster, "Add Site to Upstream", {"name": site, "path_args": {"upstream": UPSTREAM}})
	keys, bodies = {}, {}
	for name in (domain, site):
		chain, keys[name] = self_signed(name)
		certificate = {"fullchain.pem": chain, "chain.pem": chain, "privkey.pem": "********"}
		bodies[name] = {"name": name, "target": site, "certificate": certificate}
	proxy = cluster["proxy"]
	mark = f"{traefik.DYNAMIC_DIRECTORY}/{UNPUBLISHED}"
	rename = {"new_name": renamed, "domains": [site], "path_args": {"upstream": UPSTREAM}}
	cases = [
		("Add Host to Proxy", bodies[domain], None, keys[domain]),
		("Remove Host from Proxy", {"path_args": {"host": domain}}, None, None),
		("Add Host to Proxy", bodies[site], None, keys[site]),
		("Rename Site on Upstream", rename, site, None),
	]

	def generation() -> int:
		return proxy.sites().generation

	def killed(*args, **kwargs):
		raise RuntimeError("the worker died here")

	for job_type, body, of_site, key in cases:
		secrets = Secrets({"privkey.pem": key} if key else {})
		before = generation()
		with monkeypatch.context() as crash:
			crash.setattr(Proxy, "bump", killed)
			with pytest.raises(RuntimeError, match="the worker died here"):
				job(cluster, job_type, body, site=of_site, secrets=secrets)
		assert generation() == before and container_file(proxy.traefik, mark) == "", job_type
		job(cluster, job_type, body, site=of_site, secrets=secrets)
		assert generation() > before, f"{job_type} run again did not publish what it wrote"
		assert container_file(proxy.traefik, mark) is None
		published = generation()
		job(cluster, job_type, body, site=of_site, secrets=secrets)
		assert generation() == published, f"{job_type} run again changed the proxy"
	assert route_file(cluster, f"host_{traefik.route_id(domain)}.yml") is None
	assert route_file(cluster, f"host_{traefik.route_id(site)}.yml") is None
	assert traefik.parse(route_file(cluster, f"host_{traefik.route_id(renamed)}.yml"), "h").site == renamed
	assert get(cluster, renamed).json() == {"site": renamed}


def test_the_platform_cas_wildcard_is_served_by_sni_and_its_renewal_replaces_it(cluster):
	"""The platform's own CA (no ACME reachable): the root domain's wildcard, sent as Press sends a root
	domain's wildcard certificate, serves every site under the domain with a chain clients verify against
	the CA alone."""
	site, root = "shop.platform.test", "platform.test"
	cluster["topology"].site_benches[site] = BENCH
	job(cluster, "Add Site to Upstream", {"name": site, "path_args": {"upstream": UPSTREAM}})
	authority = platform_ca.Authority.create("press_selfhosted test CA")
	port = cluster["proxy"].published_port("443/tcp")
	for _ in range(2):  # the first issue, then a renewal: the new certificate replaces the old one
		issued = authority.issue(platform_ca.root_domain_names(root))
		certificate = {
			"fullchain.pem": issued.full_chain,
			"chain.pem": issued.chain,
			"privkey.pem": "********",
		}
		payload = {"items": [{"domain": root, "certificate": certificate, "code_server": False}]}
		key = Secrets({"0.certificate.privkey.pem": issued.private_key})
		job(cluster, "Add Wildcard Hosts to Proxy", payload, secrets=key)
		leaf = x509.load_pem_x509_certificate(issued.certificate.encode()).public_bytes(
			serialization.Encoding.DER
		)
		assert served_within(cluster, site, lambda served, leaf=leaf: served == leaf)
		verified = ssl.create_default_context(cadata=authority.certificate)
		with (
			socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
			verified.wrap_socket(raw, server_hostname=site) as tls,
		):
			assert (
				x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number
				== issued.serial
			)
	assert get(cluster, site).json() == {"site": site}
	job(cluster, "Remove Host from Proxy", {"path_args": {"host": f"*.{root}"}})
	# a wildcard has no router of its own to wait for: Traefik drops it on its next reload
	assert served_within(cluster, site, lambda served: served != leaf)


def test_rename_site_on_upstream_moves_route_certificate_and_domains(cluster):
	old, new, domain = "before.example.com", "after.example.com", "www.renamed.test"
	cluster["topology"].site_benches[old] = BENCH
	job(cluster, "Add Site to Upstream", {"name": old, "path_args": {"upstream": UPSTREAM}})
	certificates = {}
	for name in (old, domain):  # one for the site's own name, one for a custom domain of the site
		chain, key = self_signed(name)
		certificates[name] = chain
		payload = {
			"name": name,
			"target": old,
			"certificate": {"fullchain.pem": chain, "chain.pem": chain, "privkey.pem": "********"},
		}
		job(cluster, "Add Host to Proxy", payload, secrets=Secrets({"privkey.pem": key}))
	assert get(cluster, domain).json() == {"site": old}

	rename = {"new_name": new, "domains": [old, domain], "path_args": {"upstream": UPSTREAM}}
	job(cluster, "Rename Site on Upstream", rename, site=old)
	assert get(cluster, new).json() == {"site": new}
	assert get(cluster, domain).json() == {"site": new}
	assert get(cluster, old).status_code == 404
	assert map_file(cluster, old) is None
	assert site_router.parse(map_file(cluster, new), "map").domains == (domain,)
	assert traefik.parse(route_file(cluster, f"host_{traefik.route_id(domain)}.yml"), "h").site == new
	# the site name's certificate moved with it, keys still private
	assert route_file(cluster, f"host_{traefik.route_id(old)}.yml") is None
	moved = traefik.parse(route_file(cluster, f"host_{traefik.route_id(new)}.yml"), "h")
	assert moved == traefik.HostRoute(new, site=new)
	key_mode = cluster["proxy"].traefik.exec_run(
		["stat", "-c", "%a", f"{moved.certificate_directory}/privkey.pem"]
	)
	assert key_mode.output.decode().strip() == "600"
	code, chain = cluster["proxy"].traefik.exec_run(["cat", f"{moved.certificate_directory}/fullchain.pem"])
	assert (code, chain.decode()) == (0, certificates[old])

	# Press retrying the job finds everything renamed already
	_, log = job(cluster, "Rename Site on Upstream", rename, site=old)
	assert f"{old} is routed as {new} already" in log and f"no certificate of its own for {old}" in log


def test_wildcard_certificate_is_served_for_names_under_it(cluster):
	chain, key = self_signed("*.wild.test")
	payload = {"name": "*.wild.test", "certificate": {"fullchain.pem": chain, "chain.pem": chain}}
	_, log = job(cluster, "Add Host to Proxy", payload, secrets=Secrets({"privkey.pem": key}))
	assert any("the proxy serves 0 host change(s); Traefik at generation" in line for line in log)
	valid_route_file(cluster, f"host_{traefik.route_id('*.wild.test')}.yml")
	expected = x509.load_pem_x509_certificate(chain.encode()).public_bytes(serialization.Encoding.DER)
	assert served_within(cluster, "a.wild.test", lambda served: served == expected)


def test_status_of_a_site_the_proxy_does_not_know_fails_with_the_fix(cluster):
	with pytest.raises(SiteNotOnProxy, match="no route on proxy server .*Run 'Add Site to Upstream'"):
		job(
			cluster,
			"Update Site Status",
			{"status": "suspended", "path_args": {"upstream": UPSTREAM}},
			site="x.example.com",
		)


def test_bad_payloads_are_refused_with_the_field(cluster):
	with pytest.raises(ValidationError, match="status: 'paused'"):
		job(
			cluster,
			"Update Site Status",
			{"status": "paused", "path_args": {"upstream": UPSTREAM}},
			site=SITE,
		)
	chain, _key = self_signed("a.example.org")
	payload = {
		"name": "a.example.org",
		"target": SITE,
		"certificate": {"fullchain.pem": chain, "chain.pem": chain},
	}
	with pytest.raises(ValidationError, match=r"certificate.privkey.pem: \(hidden\).*private key"):
		job(cluster, "Add Host to Proxy", payload, secrets=Secrets({"privkey.pem": "not a key"}))


def test_a_host_without_a_certificate_needs_the_proxys_acme_resolver(cluster):
	"""Press sends the keys with empty values when its TLS Certificate holds none: only a proxy with an
	ACME resolver can certify the domain (tests/integration/test_proxy_tls.py), and never a wildcard."""
	empty = dict.fromkeys(("privkey.pem", "fullchain.pem", "chain.pem"))
	domain = "www.no-certificate.test"
	for payload in ({"name": domain, "target": SITE, "certificate": empty}, {"name": domain, "target": SITE}):
		with pytest.raises(ValidationError) as refused:
			job(cluster, "Add Host to Proxy", payload)
		assert refused.value.field == "certificate" and "has no ACME resolver" in str(refused.value)
		assert "press_selfhosted_acme_email" in refused.value.fix
	with pytest.raises(ValidationError, match="cannot be obtained by HTTP-01.*DNS-01"):
		job(cluster, "Add Host to Proxy", {"name": "*.example.org", "certificate": empty})
	assert cluster["proxy"].owner_of(domain) is None


def test_a_route_traefik_does_not_load_fails_the_reload_step(cluster):
	proxy = dataclasses.replace(cluster["proxy"], settings=ProxySettings("x", "y", reload_timeout=1))
	request = JobRequest("Add Site to Upstream", "p", "Proxy Server", "POST", "", None, None, {})
	record = JobRecord.of(request, 1)
	ctx = StepContext(
		record, cluster["server"], cluster["client"], cluster["topology"], Secrets(), print, None
	)
	with pytest.raises(
		RoutesNotLoaded,
		match="does not serve the routes.*missing.example.com: absent.*-router \\(docker logs\\)",
	):
		proxy.verify(ctx, {"missing.example.com": "activated missing.example.com x-front:80"})


def test_through_the_agent_router_and_executor(cluster, store_config):
	"""Press's requests as the transport swap hands them over: job created, executed, polled."""
	site = "routed.example.com"
	cluster["topology"].site_benches[site] = BENCH
	hosts = DockerHosts()
	store = JobStore(store_config)
	executor = Executor(
		JobStore(store_config),
		index(cluster["handler_list"]),
		cluster["topology"],
		Secrets(),
		hosts,
		ExecutorSettings(),
	)
	router = Router(cluster["handler_list"], store, executor.run, cluster["topology"], hosts)
	server = cluster["server"]

	def request(method: str, path: str, data: dict) -> dict:
		answer = router.handle(server.name, method, path, data, "AJ-1", server_type="Proxy Server")
		assert answer.status_code == 200, answer.json
		polled = router.handle(server.name, "GET", f"jobs/{answer.json['job']}", server_type="Proxy Server")
		return polled.json

	added = request("POST", f"proxy/upstreams/{UPSTREAM}/sites", {"name": site})
	assert added["status"] == "Success", added["data"]
	assert [step["name"] for step in added["steps"]] == [
		"Add Site File to Upstream Directory",
		"Reload NGINX",
	]
	assert get(cluster, site).json() == {"site": site}

	suspended = request("POST", f"proxy/upstreams/{UPSTREAM}/sites/{site}/status", {"status": "suspended"})
	assert suspended["status"] == "Success" and get(cluster, site).status_code == 503

	removed = request("DELETE", f"proxy/upstreams/{UPSTREAM}/sites/{site}", {"extra_domains": []})
	assert removed["status"] == "Success"
	assert [step["status"] for step in removed["steps"]] == ["Success"]
	assert get(cluster, site).status_code == 404

	failed = request("POST", f"proxy/upstreams/{UPSTREAM}/sites/{site}/status", {"status": "activated"})
	assert failed["status"] == "Failure"
	assert "Run 'Add Site to Upstream' for it first" in failed["data"]["output"] + failed["data"].get(
		"traceback", ""
	)
	store.close()
	executor.store.close()


def test_routes_of_the_former_layout_are_adopted_by_the_router(endpoints, docker_client):
	"""A proxy made before the site router: one Traefik file of routers per site, and a page service.
	The ensure that makes the router writes their routes into it, then removes the former files and
	the page service; the site and its domain are served throughout."""
	prefix = f"a{uuid.uuid4().hex[:7]}"
	network = f"{prefix}-net"
	app = container_server(endpoints, f"{prefix}-app.local", "Server", prefix, network, private_ip=UPSTREAM)
	server = container_server(endpoints, f"{prefix}-proxy.local", "Proxy Server", prefix, network)
	docker_client.networks.create(network, labels=naming.labels(app.name, "network"))
	site, domain = "former.example.com", "www.former.test"
	try:
		start_bench_pair(docker_client, endpoints, app, BENCH)
		settings = proxy_settings(endpoints)
		proxy = Proxy.ensure(docker_client, server, settings)
		# back to the former layout: no router, a page service, the site's routers in Traefik
		proxy.router.remove(force=True)
		docker_client.volumes.get(f"{prefix}-router").remove(force=True)
		docker_client.volumes.create(f"{prefix}-pages", labels=naming.labels(server.name, "proxy-pages"))
		docker_client.containers.run(
			endpoints["images"]["front"],
			name=f"{prefix}-pages",
			labels=naming.labels(server.name, "proxy-pages"),
			volumes={f"{prefix}-pages": {"bind": "/srv/pages", "mode": "rw"}},
			network=network,
			detach=True,
		)
		front = f"http://{prefix}-{BENCH}-front:80"
		state = {
			"kind": "SiteRoute",
			"site": site,
			"upstream": UPSTREAM,
			"app_server": app.name,
			"bench": BENCH,
			"front": front,
			"socketio": front,
			"pages": f"http://{prefix}-pages:80",
			"status": "activated",
			"domains": [domain],
			"cert_resolver": None,
		}
		routers = {
			"former": {
				"entryPoints": ["web"],
				"rule": f"Host(`{site}`) || Host(`{domain}`)",
				"priority": 100,
				"service": "former",
			}
		}
		document = {
			"http": {
				"routers": routers,
				"services": {"former": {"loadBalancer": {"servers": [{"url": front}]}}},
			}
		}
		text = f"{traefik.HEADER}{json.dumps(state)}\n{json.dumps(document)}\n"
		former_file = f"{traefik.DYNAMIC_DIRECTORY}/site_{traefik.route_id(site)}.yml"
		proxy.write(None, {former_file: (text.encode(), 0o644)})
		port = proxy.published_port("80/tcp")

		def served(host: str) -> dict | None:
			answer = requests.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=10)
			return answer.json() if answer.status_code == 200 else None

		deadline = time.monotonic() + 90
		while served(site) != {"site": site}:  # Traefik serves the former routers
			assert time.monotonic() < deadline, "Traefik did not load the former site file"
			time.sleep(0.3)

		adopted = Proxy.ensure(docker_client, server, settings)
		assert adopted.site(site) == site_router.SiteRoute(
			site=site,
			upstream=UPSTREAM,
			app_server=app.name,
			bench=BENCH,
			front=f"{prefix}-{BENCH}-front:80",
			domains=(domain,),
		)
		assert container_file(adopted.traefik, former_file) is None
		assert not docker_client.containers.list(all=True, filters={"name": f"^{prefix}-pages$"})
		with pytest.raises(docker.errors.NotFound):
			docker_client.volumes.get(f"{prefix}-pages")
		assert served(site) == {"site": site} and served(domain) == {"site": site}
	finally:
		remove_servers(docker_client, [app.name, server.name], network)


def test_jobs_changing_traefiks_files_at_once_lose_nothing(cluster):
	"""Jobs of different sites run at once on one proxy: each change of sites.yml (ACME site names,
	the generation) is made on the latest one."""
	proxy = cluster["proxy"]
	names = [f"at-once{number}.example.com" for number in range(6)]
	with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
		generations = list(pool.map(lambda name: proxy.bump(None, add=(name,)), names))
	assert len(set(generations)) == len(names)
	assert set(names) <= set(proxy.sites().acme_sites)
	proxy.bump(None, remove=tuple(names))
	assert not set(names) & set(proxy.sites().acme_sites)
	proxy.wait_for_generation(None)
