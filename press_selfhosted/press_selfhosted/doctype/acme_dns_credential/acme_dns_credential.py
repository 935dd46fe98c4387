# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt
"""A row of a Root Domain's ACME DNS Credentials: checked with the whole set when the Root Domain is saved
(press_selfhosted/glue/root_domains.py), where the provider and the other rows are known."""

from frappe.model.document import Document


class ACMEDNSCredential(Document):
	pass
