# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

from __future__ import annotations

import frappe
from frappe import _
from frappe.model.document import Document

from press_selfhosted.engine import registry
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.errors import ValidationError as EngineValidationError
from press_selfhosted.validations import infrastructure

DOCTYPE = "Local Registry"


class LocalRegistry(Document):
	def validate(self):
		try:
			values = infrastructure.check_local_registry(self)
		except EngineValidationError as error:
			frappe.throw(str(error), title=_("Invalid {0}").format(error.field))
		for field, value in values.items():
			if self.get(field) != value:
				self.set(field, value)
		if not self.is_default and not frappe.db.exists(
			DOCTYPE, {"is_default": 1, "name": ("!=", self.name)}
		):
			# the first registry is the default one
			self.is_default = 1

	def on_update(self):
		if self.is_default:
			frappe.db.set_value(DOCTYPE, {"is_default": 1, "name": ("!=", self.name)}, "is_default", 0)

	def registry_target(self) -> registry.RegistryTarget:
		"""The engine's target for this registry, with the password decrypted."""
		return infrastructure.registry_target(self, self.get_password("password", raise_exception=False))

	@frappe.whitelist()
	def test_connection(self):
		"""Calls the registry's /v2/ API with the stored credentials. Throws the engine's message on failure."""
		self.check_permission("write")
		try:
			report = registry.test_connection(self.registry_target())
		except EngineError as error:
			frappe.throw(str(error), title=_("Connection failed"))
		return report.as_dict()


def get_default() -> LocalRegistry:
	"""The default Local Registry; throws when none is set up."""
	name = frappe.db.get_value(DOCTYPE, {"is_default": 1})
	if not name:
		frappe.throw(
			_("No default Local Registry. Fix: create one and tick Default."), title=_("Registry missing")
		)
	return frappe.get_doc(DOCTYPE, name)


def get_default_registry_target() -> registry.RegistryTarget:
	return get_default().registry_target()
