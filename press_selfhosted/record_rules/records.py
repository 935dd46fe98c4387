"""Pure rules for Press records on container servers (no Frappe import).

A Server, Proxy Server or Database Server is a *container server* when both ``container_prefix`` and
``docker_socket`` are set; one without the other is refused. Records on agent servers (neither set)
keep Press's own rules: these functions return ``None`` for them or are not called.

Documents are anything with ``.get(field)`` (a Frappe Document, a dict).
"""

from __future__ import annotations

from collections.abc import Iterable

from press_selfhosted.engine import validation
from press_selfhosted.engine.errors import ValidationError

SERVER_DOCTYPES = ("Server", "Proxy Server", "Database Server")
CONTAINER_FIELDS = ("container_prefix", "docker_socket")
SERVER_CHECKED_FIELDS = ("container_prefix", "docker_socket", "ip", "private_ip")
SITE_BACKUP_SITE_STATUSES = ("Active", "Suspended")
SITE_BENCH_STATUS = "Active"
# Site Backup statuses of a backup that is asked for (Press then runs it); finished backups that Press
# records after the fact (e.g. the archive-time backup) are not checked.
REQUESTED_BACKUP_STATUSES = ("", "Pending")


def _value(doc, field: str):
	getter = getattr(doc, "get", None)
	value = getter(field) if callable(getter) else getattr(doc, field, None)
	return value.strip() if isinstance(value, str) else value


def is_container_server(doc) -> bool:
	"""Both container fields set (the record is run by press_selfhosted)."""
	return all(_value(doc, field) for field in CONTAINER_FIELDS)


def check_container_fields(doc) -> bool:
	"""True for a container server, False for an agent server; refuses one field without the other."""
	prefix, socket = (_value(doc, field) for field in CONTAINER_FIELDS)
	if prefix and not socket:
		raise ValidationError(
			"docker_socket",
			socket or "",
			"a container server needs both Container Prefix and Docker Socket",
			f"set Docker Socket ({validation.DOCKER_SOCKET_FORMS}), or clear Container Prefix for an agent server",
		)
	if socket and not prefix:
		raise ValidationError(
			"container_prefix",
			prefix or "",
			"a container server needs both Container Prefix and Docker Socket",
			"set Container Prefix (e.g. erp-cloud), or clear Docker Socket for an agent server",
		)
	return bool(prefix and socket)


def check_prefix_change(previous: str | None, prefix: str | None, in_use: int, what: str) -> None:
	"""Containers, volumes and networks are found again by their prefix and labels: renaming the prefix
	while ``in_use`` records still live on the server would orphan what they run."""
	if previous and prefix != previous and in_use:
		raise ValidationError(
			"container_prefix",
			prefix or "",
			f"{in_use} {what} still run here in containers and volumes named {previous}-…, which the new "
			"prefix would no longer find",
			f"archive them first, or keep the prefix {previous!r}",
		)


def check_server_record(
	doc, networks: Iterable = validation.DEFAULT_INTERNAL_NETWORKS
) -> dict[str, str] | None:
	"""Rules for a Server / Proxy Server / Database Server record.

	Returns ``None`` for an agent server, else the normalised values of ``container_prefix``,
	``docker_socket``, ``ip`` (when set) and ``private_ip`` (required: Press uses it to reach the
	server's services). Raises ValidationError."""
	if not check_container_fields(doc):
		return None
	values = {
		"container_prefix": validation.validate_container_prefix(_value(doc, "container_prefix")),
		"docker_socket": validation.parse_docker_socket(_value(doc, "docker_socket")).url,
	}
	if _value(doc, "ip"):
		values["ip"] = validation.validate_ip(_value(doc, "ip"), field="ip")
	private_ip = _value(doc, "private_ip")
	if not private_ip:
		raise ValidationError(
			"private_ip",
			"",
			"a container server needs its private IP (Press puts it in bench and site configuration)",
			"enter the server's address on the internal network, e.g. 10.0.0.5",
		)
	values["private_ip"] = validation.validate_private_ip(private_ip, networks, field="private_ip")
	return values


def check_new_site(
	name: str,
	*,
	bench: str | None,
	bench_status: str | None,
	plan: str | None,
	name_taken: bool,
) -> str:
	"""Rules for a new Site on a container server: its name is a valid FQDN not used by another site
	or site domain, its bench exists and is Active, and a plan is set. Returns the name."""
	validation.validate_fqdn(name, field="name")
	if name_taken:
		raise ValidationError(
			"name", name, "another site or site domain already has this name", "choose another subdomain"
		)
	if not bench or bench_status is None:
		raise ValidationError(
			"bench", bench or "", "the bench does not exist", "choose an existing, Active bench"
		)
	if bench_status != SITE_BENCH_STATUS:
		raise ValidationError(
			"bench",
			bench,
			f"the bench is {bench_status}; sites are created only on an Active bench",
			"wait until the bench is Active, or choose an Active bench of the same release group",
		)
	if not plan:
		raise ValidationError(
			"plan", plan or "", "a site on a container server needs a plan", "choose a Site Plan for the site"
		)
	return name


def check_site_status_change(previous: str | None, status: str | None) -> None:
	"""Archived is final on a container server: the site's database and files were dropped."""
	if previous == "Archived" and status != "Archived":
		raise ValidationError(
			"status",
			status or "",
			"an Archived site cannot change status: its database and files were dropped when it was archived",
			"create a new site from the archived site's last backup (New Site from Backup)",
		)


def is_requested_backup(status: str | None, recorded_after_the_fact: bool) -> bool:
	"""Whether a new Site Backup asks for a backup to be taken (then the site rules apply)."""
	return not recorded_after_the_fact and (status or "") in REQUESTED_BACKUP_STATUSES


def check_new_site_backup(site: str | None, site_status: str | None) -> str:
	"""Rules for a requested Site Backup of a site on a container server: the site exists and is
	Active or Suspended. Returns the site name."""
	if not site or site_status is None:
		raise ValidationError("site", site or "", "the site does not exist", "choose an existing site")
	if site_status not in SITE_BACKUP_SITE_STATUSES:
		raise ValidationError(
			"site",
			site,
			f"the site is {site_status}; backups are taken of Active or Suspended sites only",
			"wait until the site is Active (or Suspended) and ask for the backup again",
		)
	return site


DOCKER_TLS_FIELDS = ("docker_tls_ca", "docker_tls_cert", "docker_tls_key")


def check_docker_tls(doc) -> bool:
	"""True when the server reaches Docker over TLS with client certificates (all three PEM fields set).

	Only a ``tcp://`` socket takes them, and then all three or none (a daemon without --tlsverify);
	``unix://`` and ``ssh://`` sockets refuse them, so that no unused key is stored."""
	present = [field for field in DOCKER_TLS_FIELDS if _value(doc, field)]
	if not present:
		return False
	socket = _value(doc, "docker_socket") or ""
	if not socket.lower().startswith("tcp://"):
		raise ValidationError(
			present[0],
			"",
			f"Docker TLS certificates are used only with a tcp:// Docker Socket, not with {socket or 'none'}",
			"clear Docker TLS CA Certificate, Client Certificate and Client Key, or use tcp://HOST:2376",
			show_value=False,
		)
	missing = [field for field in DOCKER_TLS_FIELDS if field not in present]
	if missing:
		raise ValidationError(
			missing[0],
			"",
			"Docker over TLS needs the CA certificate, the client certificate and the client key together",
			f"set {', '.join(missing)} as well (PEM text), or clear the other Docker TLS fields",
			show_value=False,
		)
	for field in DOCKER_TLS_FIELDS[:2]:
		if "-----BEGIN CERTIFICATE-----" not in _value(doc, field):
			raise ValidationError(
				field,
				"",
				"not a PEM certificate (no -----BEGIN CERTIFICATE----- line)",
				"paste the whole PEM file, e.g. the content of ca.pem or cert.pem",
				show_value=False,
			)
	return True
