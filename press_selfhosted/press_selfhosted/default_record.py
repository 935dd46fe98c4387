"""What Storage Configuration and Local Registry share: validation by the engine's rules, and exactly
one record that is the default (the first one saved, or the last one ticked)."""

from __future__ import annotations

from collections.abc import Callable

import frappe
from frappe import _
from frappe.model.document import Document

from press_selfhosted.engine.errors import ValidationError as EngineValidationError


class DefaultRecord(Document):
	# the pure rules of press_selfhosted.record_rules.infrastructure: document in, normalised values out
	check_record: Callable[[Document], dict]

	def validate(self):
		try:
			values = type(self).check_record(self)
		except EngineValidationError as error:
			frappe.throw(str(error), title=_("Invalid {0}").format(error.field))
		for field, value in values.items():
			if self.get(field) != value:
				self.set(field, value)
		if not self.is_default and not frappe.db.exists(
			self.doctype, {"is_default": 1, "name": ("!=", self.name)}
		):
			self.is_default = 1

	def on_update(self):
		if self.is_default:
			frappe.db.set_value(self.doctype, {"is_default": 1, "name": ("!=", self.name)}, "is_default", 0)


def get_default(doctype: str, missing: str) -> Document:
	"""The default record of ``doctype``; throws ``missing`` (what to create) when there is none."""
	name = frappe.db.get_value(doctype, {"is_default": 1})
	if not name:
		frappe.throw(
			_("No default {0}. Fix: create one and tick Default.").format(_(doctype)), title=_(missing)
		)
	return frappe.get_doc(doctype, name)
