# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

from __future__ import annotations

import frappe
from frappe import _

from press_selfhosted.engine.clients import registry
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.press_selfhosted import default_record
from press_selfhosted.press_selfhosted.default_record import DefaultRecord
from press_selfhosted.record_rules import infrastructure

DOCTYPE = "Local Registry"


class LocalRegistry(DefaultRecord):
	check_record = staticmethod(infrastructure.check_local_registry)

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
	return default_record.get_default(DOCTYPE, "Registry missing")


def get_default_registry_target() -> registry.RegistryTarget:
	return get_default().registry_target()
