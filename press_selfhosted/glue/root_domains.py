"""How a container proxy certifies the sites under its root domain, chosen on the Root Domain's form.

HTTP-01 (the default): Traefik's ACME resolver obtains a certificate per site name. DNS-01: it obtains one
wildcard ``*.<domain>`` (with the bare name) through a DNS provider of Traefik's ACME client, whose
variables are the Root Domain's **ACME DNS Credentials** (values in Password fields). The proxy server's
own ``domain`` is the root domain it certifies this way (one DNS provider per Traefik resolver).
A Root Domain is refused on save when its DNS-01 settings are wrong, naming the field and the fix.
"""

from __future__ import annotations

import re

import frappe

from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.errors import ValidationError

DNS_01 = "DNS-01"
# the engine names the fields by their fieldnames; the desk shows their labels
LABELS = {
	acme.FIELD_PROVIDER: "ACME DNS Provider",
	acme.FIELD_CREDENTIALS: "ACME DNS Credentials",
	acme.FIELD_RESOLVERS: "ACME DNS Resolvers",
	acme.FIELD_DELAY: "ACME DNS Delay",
}


def dns_challenge(root_domain) -> acme.DnsChallenge | None:
	"""The Root Domain's DNS-01 settings (None: HTTP-01). Raises the engine's ValidationError."""
	if root_domain.get("acme_challenge") != DNS_01:
		return None
	credentials: dict[str, str] = {}
	for row in root_domain.get("acme_dns_credentials") or []:
		variable = (row.variable or "").strip()
		if variable in credentials:
			raise ValidationError(
				f"{acme.FIELD_CREDENTIALS}.variable",
				variable,
				"the variable is listed twice",
				"keep one row per variable",
			)
		# typed in this save, or (masked on the form) the stored one
		credentials[variable] = row.get_password("value", raise_exception=False) or ""
	return acme.DnsChallenge(
		provider=(root_domain.get("acme_dns_provider") or "").strip(),
		credentials=credentials,
		resolvers=tuple(r for r in re.split(r"[\s,]+", root_domain.get("acme_dns_resolvers") or "") if r),
		delay=int(root_domain.get("acme_dns_delay") or 0),
		check_propagation=not root_domain.get("acme_dns_skip_propagation_check"),
	)


def dns_settings(proxy_server: str) -> tuple[acme.DnsChallenge | None, tuple[str, ...]]:
	"""The proxy's DNS-01 challenge and the wildcard it obtains with it: its root domain's, when that
	root domain chose DNS-01."""
	domain = frappe.db.get_value("Proxy Server", proxy_server, "domain")
	if not domain or not frappe.db.exists("Root Domain", domain):
		return None, ()
	challenge = dns_challenge(frappe.get_doc("Root Domain", domain))
	return (challenge, (domain,)) if challenge else (None, ())


def validate_root_domain(doc, method=None) -> None:
	"""doc_events (Root Domain validate): DNS-01 settings the proxy could not use are refused on save."""
	if doc.get("acme_challenge") != DNS_01:
		return
	if doc.dns_provider != "Generic":
		frappe.throw(
			f"ACME Challenge: DNS-01 is not accepted while DNS Provider is {doc.dns_provider}: Press obtains "
			"this domain's wildcard itself. Fix: set DNS Provider to Generic to let the container proxy obtain "
			"it, or set ACME Challenge back to HTTP-01.",
			title="ACME DNS-01",
		)
	try:
		dns_challenge(doc)
	except ValidationError as error:
		frappe.throw(desk_message(error), title="ACME DNS-01")


def desk_message(error: ValidationError) -> str:
	"""The engine's refusal with the form's labels instead of field names."""
	base, _, rest = error.field.partition(".")
	where = LABELS.get(base, base) + (f" ({rest})" if rest else "")
	# a credential's value is never shown: the engine passes it as ""
	shown = f"{error.value!r} is not accepted" if error.value not in ("", None) else "not accepted"
	return f"{where}: {shown}: {error.rule}. Fix: {error.fix}"
