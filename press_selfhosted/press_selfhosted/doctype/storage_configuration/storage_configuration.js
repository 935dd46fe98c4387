// Copyright (c) 2026, press_selfhosted developers
// For license information, please see license.txt

frappe.ui.form.on("Storage Configuration", {
	refresh(frm) {
		if (frm.is_new()) {
			return;
		}
		frm.add_custom_button(__("Test Connection"), () => test_connection(frm, false));
		frm.add_custom_button(__("Test Connection and Create Bucket"), () => test_connection(frm, true));
	},
});

function test_connection(frm, create_bucket) {
	if (frm.is_dirty()) {
		frappe.msgprint(__("Save your changes first: the test uses the stored keys."));
		return;
	}
	frm.call({
		method: "test_connection",
		doc: frm.doc,
		args: { create_bucket: create_bucket ? 1 : 0 },
		freeze: true,
		freeze_message: __("Testing the connection..."),
	}).then((r) => {
		if (r.message) {
			frappe.msgprint({
				title: __("Connection works"),
				message: frappe.utils.escape_html(r.message.message),
				indicator: "green",
			});
		}
	});
}
