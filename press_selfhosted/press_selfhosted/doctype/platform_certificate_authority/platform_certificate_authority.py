# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt
"""The platform's own CA, kept as one record: its certificate in the clear, its key encrypted."""

import frappe
from frappe.model.document import Document

from press_selfhosted.engine.clients import platform_ca

DOCTYPE = "Platform Certificate Authority"


class PlatformCertificateAuthority(Document):
	pass


def authority() -> platform_ca.Authority:
	"""The CA, made on first use."""
	doc = frappe.get_single(DOCTYPE)
	if doc.certificate:
		return platform_ca.Authority(doc.certificate, doc.get_password("private_key"))
	made = platform_ca.Authority.create(f"press_selfhosted platform CA of {frappe.local.site}")
	doc.common_name = f"press_selfhosted platform CA of {frappe.local.site}"
	doc.certificate = made.certificate
	doc.private_key = made.private_key
	doc.save(ignore_permissions=True)
	return made


def ca_certificate() -> str:
	"""The CA's certificate (PEM); reading it never makes the CA."""
	certificate = frappe.db.get_single_value(DOCTYPE, "certificate")
	if not certificate:
		frappe.throw(
			"The platform has no CA yet: it is made with the first certificate it issues "
			"(bench --site <site> press-selfhosted certify-root-domain <root domain>)."
		)
	return certificate
