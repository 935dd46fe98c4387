"""The site router's files: map lines, the state header, the nginx configuration; hostile names never
reach nginx. Pure functions, and one run of the real nginx (the front image) over what they render."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from press_selfhosted.engine.clients import site_router
from press_selfhosted.engine.clients.site_router import SiteRoute
from press_selfhosted.engine.errors import RouteStateUnreadable, ValidationError

BASE = SiteRoute(
	site="site1.example.com",
	upstream="10.0.0.5",
	app_server="app1.example.com",
	bench="bench-0001",
	front="p1-bench-0001-front:80",
	domains=("shop.example.org",),
	cert_resolver="acme",
)


def test_one_map_file_per_host_and_the_state_in_the_sites_own_file():
	files = site_router.render(BASE)
	assert set(files) == {"routes/site1_example_com.map", "routes/shop_example_org.map"}
	value = "activated site1.example.com p1-bench-0001-front:80"
	assert files["routes/shop_example_org.map"] == f'shop.example.org "{value}";\n'
	own = files["routes/site1_example_com.map"]
	header, line = own.splitlines()
	assert header.startswith("# press-selfhosted route: {") and line == f'site1.example.com "{value}";'
	assert site_router.parse(own, "site1_example_com.map") == BASE
	for text in files.values():
		assert site_router.served_value(text) == value and site_router.owner(value) == BASE.site


@pytest.mark.parametrize("status", ["suspended", "suspended_saas", "deactivated"])
def test_a_status_is_in_the_map_value(status):
	route = BASE.with_status(status, extra_domains=("www.example.org",))
	assert route.value == f"{status} site1.example.com p1-bench-0001-front:80"
	assert route.hosts == ("site1.example.com", "shop.example.org", "www.example.org")
	assert site_router.expected(route, gone=("old.example.com",)) == {
		"old.example.com": None,
		**dict.fromkeys(route.hosts, route.value),
	}


def test_the_header_of_a_former_traefik_file_is_read_for_adoption():
	former = {
		"kind": "SiteRoute",
		"site": "site1.example.com",
		"upstream": "10.0.0.5",
		"app_server": "app1.example.com",
		"bench": "bench-0001",
		"front": "http://p1-bench-0001-front:80",
		"socketio": "http://p1-bench-0001-front:80",
		"pages": "http://px-pages:80",
		"status": "suspended",
		"domains": ["shop.example.org"],
		"cert_resolver": "acme",
	}
	route = site_router.parse(f"{site_router.HEADER}{json.dumps(former)}\n{{}}\n", "site_x.yml")
	assert route == BASE.with_status("suspended")


def test_a_file_without_the_header_is_refused_with_the_fix():
	with pytest.raises(RouteStateUnreadable, match="x.map.*not written by press_selfhosted.*Remove it"):
		site_router.parse('a.example.com "activated a.example.com f:80";\n', "x.map")


@pytest.mark.parametrize(
	("change", "field"),
	[
		({"site": 'a.example.com "x";'}, "name"),
		({"site": "a.example.com;include /etc/passwd"}, "name"),
		({"site": "A.example.com"}, "name"),
		({"domains": ("shop.example.org\n evil.com",)}, "domain"),
		({"domains": ("*.example.org",)}, "domain"),
		({"front": "front:80; }"}, "front"),
		({"front": "http://front:80"}, "front"),
		({"front": "front 80"}, "front"),
		({"status": "paused"}, "status"),
	],
)
def test_hostile_values_never_reach_a_map_line(change, field):
	with pytest.raises(ValidationError) as refused:
		SiteRoute(**{**BASE.__dict__, **change})
	assert refused.value.field == field


def test_free_text_fields_stay_inside_the_header_comment():
	route = SiteRoute(**{**BASE.__dict__, "bench": 'b\n"; }\nserver {', "app_server": "x\r\ny"})
	header = site_router.header(route)
	assert header.count("\n") == 1 and header.endswith("}\n") and "\r" not in header
	assert site_router.parse(site_router.render(route)["routes/site1_example_com.map"], "m") == route
	with pytest.raises(ValidationError):
		site_router.map_line('evil.com" "x', "activated")


def test_the_nginx_configuration():
	conf = site_router.nginx_conf()
	assert "map $host" not in conf  # the one map is read through $press_host (the check server too)
	assert "map $press_host $press_route { include /srv/router/routes/*.map; }" in conf
	assert '"8081" $arg_host;' in conf and "listen 127.0.0.1:8081;" in conf
	assert "listen 80 default_server;" in conf and "resolver 127.0.0.11" in conf
	assert "proxy_set_header X-Frappe-Site-Name $press_site;" in conf  # overwrites a visitor's
	assert "proxy_set_header Upgrade $http_upgrade;" in conf and "location /socket.io {" in conf
	for status, (page, code) in site_router.PAGES.items():
		assert f"if ($press_status = {status}) {{ return {code} '<!doctype html>" in conf
		html = site_router.page_html(page)
		assert "'" not in html and "\\" not in html  # it sits in a single-quoted nginx string
	assert "if ($press_status != activated) { return 404" in conf


def test_nginx_reads_the_configuration_and_the_map(endpoints, docker_client):
	"""The front image's nginx parses what is rendered here (`nginx -t`), and its check server
	answers each host's value and nothing for an unknown one."""
	files = {"nginx.conf": site_router.nginx_conf()}
	files.update(
		site_router.render(BASE.with_status("suspended").with_domains(removed=("shop.example.org",)))
	)
	files.update(site_router.render(SiteRoute(**{**BASE.__dict__, "site": "two.example.com", "domains": ()})))
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		for name, text in files.items():
			info = tarfile.TarInfo(name)
			info.size = len(text.encode())
			archive.addfile(info, io.BytesIO(text.encode()))
	check = (
		f"nginx -c {site_router.CONF} -t && nginx -c {site_router.CONF} && "
		# until a worker answers (the container's wait below bounds it)
		f"until wget -q -O /dev/null http://{site_router.CHECK_ADDRESS}/route; do sleep 0.1; done && "
		"for h in site1.example.com two.example.com shop.example.org unknown.example.com; do "
		f'printf "%s=" "$h"; wget -q -O - "http://{site_router.CHECK_ADDRESS}/route?host=$h"; done'
	)
	container = docker_client.containers.create(endpoints["images"]["front"], ["sh", "-c", check])
	try:
		container.put_archive("/", _directory(site_router.DIRECTORY))
		container.put_archive(site_router.DIRECTORY, buffer.getvalue())
		container.start()
		assert container.wait(timeout=60)["StatusCode"] == 0, container.logs().decode()
		answers = container.logs(stderr=False).decode().splitlines()
	finally:
		container.remove(force=True)
	assert answers == [
		"site1.example.com=suspended site1.example.com p1-bench-0001-front:80",
		"two.example.com=activated two.example.com p1-bench-0001-front:80",
		"shop.example.org=",  # no file for it
		"unknown.example.com=",
	]


def _directory(path: str) -> bytes:
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		info = tarfile.TarInfo(path.lstrip("/"))
		info.type = tarfile.DIRTYPE
		info.mode = 0o755
		archive.addfile(info)
	return buffer.getvalue()


def test_custom_domains_certified_by_acme_are_among_the_sites_domains():
	route = BASE.with_domains(added=("www.example.org",), acme=True)
	assert (route.domains, route.acme_domains) == (
		("shop.example.org", "www.example.org"),
		("www.example.org",),
	)
	assert site_router.parse(site_router.render(route)["routes/site1_example_com.map"], "x.map") == route
	# a certificate sent for it later takes over from the resolver; a status change keeps it as it was
	assert route.with_domains(added=("www.example.org",), acme=False).acme_domains == ()
	assert route.with_status("suspended").acme_domains == ("www.example.org",)
	assert route.with_domains(added=("more.example.org",)).acme_domains == ("www.example.org",)
	gone = route.with_domains(removed=("www.example.org",))
	assert (gone.domains, gone.acme_domains) == (("shop.example.org",), ())
	with pytest.raises(ValidationError) as refused:
		SiteRoute(**{**vars(BASE), "acme_domains": ("other.example.org",)})
	assert refused.value.field == "acme_domains" and "Fix:" in str(refused.value)
