// Copyright (c) 2026, press_selfhosted developers
// For license information, please see license.txt

frappe.ui.form.on("Local Registry", {
	refresh(frm) {
		if (frm.is_new()) {
			return;
		}
		frm.add_custom_button(__("Test Connection"), () => {
			if (frm.is_dirty()) {
				frappe.msgprint(__("Save your changes first: the test uses the stored credentials."));
				return;
			}
			frm.call({
				method: "test_connection",
				doc: frm.doc,
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
		});
	},
});
