# Copyright (c) 2026, press_selfhosted developers
# For license information, please see license.txt

from __future__ import annotations

import frappe
from frappe import _
from frappe.utils import sbool

from press_selfhosted.engine.clients import storage
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.press_selfhosted import default_record
from press_selfhosted.press_selfhosted.default_record import DefaultRecord
from press_selfhosted.record_rules import infrastructure

DOCTYPE = "Storage Configuration"


class StorageConfiguration(DefaultRecord):
	check_record = staticmethod(infrastructure.check_storage_configuration)

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
	return default_record.get_default(DOCTYPE, "Storage missing")


def find_default() -> StorageConfiguration | None:
	"""The default Storage Configuration, None when none is set up."""
	name = frappe.db.get_value(DOCTYPE, {"is_default": 1})
	return frappe.get_doc(DOCTYPE, name) if name else None


def get_default_s3_target(bucket: str | None = None) -> storage.S3Target:
	return get_default().s3_target(bucket)
