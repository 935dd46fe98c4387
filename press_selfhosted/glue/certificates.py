"""Frappe glue for the certificates Traefik obtains by ACME on container Proxy Servers.

Press does not know of them (it issues none for sites under a Generic root domain), so an ACME
failure would only show in Traefik's log. Every hour (``hourly_long``) each container Proxy Server
whose Traefik has an ACME resolver is read (``engine.clients.proxy.Proxy.site_certificates``: its site routes
and ``acme.json``, read in memory) and the sites without a certificate after the grace period, or whose
certificate is not being renewed, are written to one Error Log per proxy. The same report answers
``press_selfhosted.api.site_certificates``.

Every hour too, what each proxy serves by ACME is kept as Press's own **TLS Certificate** records
(``watch_site_certificates``): one per site name, one per custom domain it certifies (the record Press's
Site Domain made, see ``acme_custom_domain``) and one ``*.<root domain>`` per DNS-01 wildcard, with its
status (Pending, Active, Failure with the reason, Expired), dates, issuer, chain and private key (a
Password field: the only place a key read from ``acme.json`` is kept). A name the proxy no longer
certifies loses its record, but a custom domain's, which Press deletes with its Site Domain; a lapsed
certificate is marked Expired and written to the Error Log once. Records without this proxy in
``acme_proxy_server`` (Press's, the operator's, the platform CA's, another proxy's) are never touched.
"""

from __future__ import annotations

import datetime

import frappe
from press.exceptions import TLSRetryLimitExceeded
from press.press.doctype.tls_certificate.tls_certificate import MANUAL_RETRY_LIMIT, TLSCertificate

from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.clients.proxy import Proxy
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.policies import acme_records
from press_selfhosted.glue import cluster, settings, topology
from press_selfhosted.record_rules.doc_events import server_is_container_server

TITLE = "press_selfhosted: site certificates on {proxy}"
RECORDS_TITLE = "press_selfhosted: TLS Certificate records of {proxy}"
EXPIRED_TITLE = "press_selfhosted: TLS Certificate {name} expired"


def _running_proxy(proxy_server: str) -> Proxy | None:
	"""The container Proxy Server's Traefik and router as they run, with its settings (None: not made)."""
	server = topology.FrappeTopology().server("Proxy Server", proxy_server)
	client = topology.docker_hosts.client(server.docker)
	return Proxy.existing(client, server, settings.proxy_settings(server))


def site_certificates(proxy_server: str) -> list[dict]:
	"""The report of one container Proxy Server (empty when its Traefik has no ACME resolver)."""
	proxy = _running_proxy(proxy_server)
	if proxy is None:
		return []
	return acme.certificate_rows(proxy.site_certificates(), datetime.datetime.now(datetime.timezone.utc))


def report_site_certificates() -> None:
	"""Scheduler (hourly_long): one Error Log per container Proxy Server with certificate problems."""
	for name in _container_proxies():
		try:
			text = acme.problems_text(name, site_certificates(name))
		except Exception:  # noqa: BLE001 - one unreachable proxy must not hide the others' report
			frappe.log_error(title=TITLE.format(proxy=name))
			continue
		if text:
			frappe.log_error(title=TITLE.format(proxy=name), message=text)


def _container_proxies() -> list[str]:
	return frappe.get_all(
		"Proxy Server",
		filters={"status": "Active", "container_prefix": ("is", "set"), "docker_socket": ("is", "set")},
		pluck="name",
	)


def watch_site_certificates() -> None:
	"""Scheduler (hourly_long): every container proxy's ACME certificates as TLS Certificate records."""
	for name in _container_proxies():
		try:
			sync_certificate_records(name)
			frappe.db.commit()
		except Exception:  # noqa: BLE001 - one unreachable proxy must not stop the others' records
			frappe.db.rollback()
			frappe.log_error(title=RECORDS_TITLE.format(proxy=name))


def sync_certificate_records(proxy_server: str) -> dict[str, str]:
	"""The TLS Certificate records of what ``proxy_server`` serves by ACME, made, updated or removed;
	record name → its status."""
	proxy = _running_proxy(proxy_server)
	found = []
	if proxy is not None and proxy.settings.acme is not None:
		found = acme_records.records(
			proxy.site_certificates(),
			proxy.wildcards_requested(),
			proxy.held_certificates(),
			proxy.settings.acme,
			datetime.datetime.now(datetime.timezone.utc),
		)
	kept = {
		row.name: row
		for row in frappe.get_all(
			"TLS Certificate",
			filters={"acme_proxy_server": proxy_server},
			fields=["name", "status", "error", "certificate"],
		)
	}
	for record in found:
		current = kept.get(record.name)
		if current is None and frappe.db.exists("TLS Certificate", record.name):
			# Press's own, the operator's, the platform CA's, or another proxy's: never replaced here
			continue
		values = _values(record, proxy_server)
		if current and (current.status, current.error, current.certificate) == (
			values["status"],
			values["error"],
			values.get("certificate"),
		):
			continue
		_save(record.name, values)
		if record.status == acme_records.EXPIRED and (current is None or current.status != record.status):
			frappe.log_error(title=EXPIRED_TITLE.format(name=record.name), message=record.error)
		if not record.wildcard:
			_follow_site_domain(record)
	for name in kept.keys() - {record.name for record in found}:
		# a custom domain's record goes with its Site Domain (Press deletes both); until the proxy routes
		# the domain (Add Host to Proxy not run yet, or failed) it stays Pending
		if not frappe.db.exists("Site Domain", {"tls_certificate": name}):
			frappe.delete_doc("TLS Certificate", name, ignore_permissions=True)
	return {record.name: record.status for record in found}


def _follow_site_domain(record: acme_records.CertificateRecord) -> None:
	"""A custom domain whose certificate failed is Broken, as Press marks one whose certbot failed, so the
	dashboard offers its retry (``ContainerAwareSite.retry_add_domain``); Active again once the proxy has
	its certificate. Only between those two: Pending belongs to Press's Add Host to Proxy job."""
	domain = frappe.db.get_value(
		"Site Domain", {"tls_certificate": record.name}, ["name", "status"], as_dict=True
	)
	flips = {acme_records.FAILURE: ("Active", "Broken"), acme_records.ACTIVE: ("Broken", "Active")}
	if domain and record.status in flips and domain.status == flips[record.status][0]:
		frappe.db.set_value("Site Domain", domain.name, "status", flips[record.status][1])


def _values(record: acme_records.CertificateRecord, proxy_server: str) -> dict:
	values = {
		"domain": record.domain,
		"wildcard": int(record.wildcard),
		"status": record.status,
		"error": record.error,
		"provider": "Other",
		"acme_proxy_server": proxy_server,
	}
	held = record.held
	if held is None:
		return values
	if record.status == acme_records.ACTIVE:
		values["retry_count"] = 0  # as Press's certbot does once a certificate is obtained
	leaf = held.leaf
	# Press's field knows RSA sizes only; Traefik's default keys are EC (the field then keeps its default)
	size = str(held.rsa_bits)
	return {
		**values,
		"certificate": held.certificate,
		"intermediate_chain": held.intermediates,
		"full_chain": held.chain,
		"private_key": held.private_key,
		"certificate_issuer": held.issuer,
		"rsa_key_size": size if size in ("2048", "3072", "4096") else "2048",
		# naive UTC, as Press's own records of a certificate's dates
		"issued_on": _naive_utc(acme.not_before(leaf)),
		"expires_on": _naive_utc(acme.not_after(leaf)),
	}


def _save(name: str, values: dict) -> None:
	"""Written without Press's validation of TLS Certificate. Press runs certbot only for provider
	"Let's Encrypt" (``obtain_certificate``, also called after insert, and ``renew_tls_certificates`` both
	skip "Other"), so provider "Other" keeps it from obtaining these names itself. Its ``validate`` of
	"Other" records checks an uploaded key against the RSA size field, which Traefik's EC keys never
	match; ``flags.ignore_validate`` skips it: the values here are read from the chain Traefik serves."""
	if frappe.db.exists("TLS Certificate", name):
		doc = frappe.get_doc("TLS Certificate", name)
		doc.update(values)
	else:
		# a custom domain's record keeps its Site Domain's team; the operator's team owns the others
		doc = frappe.get_doc({"doctype": "TLS Certificate", "team": cluster.operator_team(), **values})
	doc.flags.ignore_validate = True
	if doc.is_new():
		doc.insert(ignore_permissions=True)
	else:
		doc.save(ignore_permissions=True)


def acme_proxy_of(site: str) -> str | None:
	"""The container Proxy Server of ``site`` when it has an ACME resolver (the site config's ACME keys,
	which every container proxy's Traefik is set up with); else None."""
	proxy = frappe.db.get_value("Server", frappe.db.get_value("Site", site, "server"), "proxy_server")
	if not server_is_container_server("Proxy Server", proxy):
		return None
	resolver, _default_certificate = acme.from_site_config(frappe.conf)
	return proxy if resolver else None


def acme_custom_domain(doc, proxy: str) -> None:
	"""A custom domain's TLS Certificate as Press's Site Domain inserts it, left to ``proxy``'s ACME
	resolver: provider "Other", so Press's certbot never runs (it needs Press to answer the challenge,
	which Traefik answers here, and the Internet); Pending without a certificate until
	``watch_site_certificates`` fills it from acme.json; ``acme_proxy_server`` makes it that watch's own."""
	doc.update({"provider": "Other", "status": "Pending", "acme_proxy_server": proxy})
	# Press's validate of provider "Other" refuses a record without a certificate and key (it checks an
	# uploaded pair): Traefik obtains them only once Add Host to Proxy has run, so it is skipped here.
	doc.flags.ignore_validate = True


def _naive_utc(moment: datetime.datetime) -> datetime.datetime:
	return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


class ContainerAwareTLSCertificate(TLSCertificate):
	"""A certificate a container proxy obtains by ACME (``acme_proxy_server`` set) is the proxy's business:
	Press's after-insert and key-size hooks, which would obtain it, leave it alone (the proxy asks for it
	once Add Host to Proxy routes the name; the watch's saves change the key size to what Traefik holds)."""

	def after_insert(self):
		if not self.get("acme_proxy_server"):
			super().after_insert()

	def on_update(self):
		if not self.get("acme_proxy_server"):
			super().on_update()

	@frappe.whitelist()
	def obtain_certificate(self):
		"""Press's "obtain it again" (the desk's button, the dashboard's Fetch Certificate, a Site Domain's
		retry): a certificate a container proxy obtains by ACME is asked for again by that proxy, once the
		cause of a failure is fixed; Press's certbot keeps every other one."""
		if not self.get("acme_proxy_server"):
			return super().obtain_certificate()
		if self.retry_count >= MANUAL_RETRY_LIMIT:
			frappe.throw(
				f"{self.name} was retried {self.retry_count} times. Fix the cause first (its error says it: "
				"DNS pointing at the proxy, port 80 open, the DNS provider's credential), then reset "
				"Retry Count to retry.",
				TLSRetryLimitExceeded,
			)
		self.update({"status": "Pending", "error": None, "retry_count": self.retry_count + 1})
		self.flags.ignore_validate = True  # Press's check of an uploaded key pair (see _save)
		self.save(ignore_permissions=True)
		frappe.enqueue(
			f"{__name__}.retry_acme_certificate",
			name=self.name,
			enqueue_after_commit=True,
			job_id=f"retry_acme_certificate:{self.name}",
			deduplicate=True,
		)
		return None


def retry_acme_certificate(name: str) -> None:
	"""Background job: the proxy's ACME resolver asked again for ``name``. A custom domain the proxy does
	not route (its Add Host to Proxy failed) is sent again with Press's own Add Host to Proxy, which routes
	it and adds it to the names Traefik certifies. A refusal is the record's error."""
	proxy_server = frappe.db.get_value("TLS Certificate", name, "acme_proxy_server")
	site_domain = frappe.db.get_value("Site Domain", {"tls_certificate": name})
	try:
		proxy = _running_proxy(proxy_server)
		if proxy is None:
			raise EngineError(f"proxy server {proxy_server} has no Traefik container. Fix: set it up again.")
		sites = proxy.sites()
		if site_domain and not (sites and name in sites.acme_names):
			frappe.get_doc("Site Domain", site_domain).create_agent_request()
		else:
			proxy.retry_certificates((name,))
	except EngineError as error:
		frappe.db.set_value("TLS Certificate", name, {"status": "Failure", "error": str(error)})
