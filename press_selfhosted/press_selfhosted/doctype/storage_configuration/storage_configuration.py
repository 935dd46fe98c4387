# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

from __future__ import annotations

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils import sbool

from press_selfhosted.engine import storage
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.errors import ValidationError as EngineValidationError
from press_selfhosted.validations import infrastructure

DOCTYPE = "Storage Configuration"


class StorageConfiguration(Document):
	def validate(self):
		try:
			values = infrastructure.check_storage_configuration(self)
		except EngineValidationError as error:
			frappe.throw(str(error), title=_("Invalid {0}").format(error.field))
		for field, value in values.items():
			if self.get(field) != value:
				self.set(field, value)
		if not self.is_default and not frappe.db.exists(
			DOCTYPE, {"is_default": 1, "name": ("!=", self.name)}
		):
			# the first configuration is the default one
			self.is_default = 1

	def on_update(self):
		if self.is_default:
			frappe.db.set_value(DOCTYPE, {"is_default": 1, "name": ("!=", self.name)}, "is_default", 0)

	def s3_target(self, bucket: str | None = None) -> storage.S3Target:
		"""The engine's target for this configuration, with the keys decrypted."""
		return infrastructure.s3_target(
			self,
			self.get_password("access_key", raise_exception=False),
			self.get_password("secret_key", raise_exception=False),
			bucket,
		)

	@frappe.whitelist()
	def test_connection(self, create_bucket=False):
		"""Reaches the endpoint with the stored keys, checks (or creates) the default bucket and that
		the keys may write to it. Throws the engine's message on failure."""
		self.check_permission("write")
		try:
			report = storage.test_connection(self.s3_target(), create_bucket=sbool(create_bucket))
		except EngineError as error:
			frappe.throw(str(error), title=_("Connection failed"))
		return report.as_dict()


def get_default() -> StorageConfiguration:
	"""The default Storage Configuration; throws when none is set up."""
	name = frappe.db.get_value(DOCTYPE, {"is_default": 1})
	if not name:
		frappe.throw(
			_("No default Storage Configuration. Fix: create one and tick Default."),
			title=_("Storage missing"),
		)
	return frappe.get_doc(DOCTYPE, name)


def get_default_s3_target(bucket: str | None = None) -> storage.S3Target:
	return get_default().s3_target(bucket)
