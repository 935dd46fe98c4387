// A site on a container server: its backups are verified and drilled by press_selfhosted, and its usage is
// measured against its plan; the form shows the last verified restore and offers these checks.
function call_api(method, args, title) {
	return frappe.call({ method: `press_selfhosted.api.${method}`, args, freeze: true, freeze_message: title });
}

frappe.ui.form.on("Site", {
	async refresh(frm) {
		if (frm.is_new() || frm.doc.status === "Archived") {
			return;
		}
		const container = await frappe.db.get_value("Server", frm.doc.server, ["container_prefix", "docker_socket"]);
		if (!(container.message && container.message.container_prefix && container.message.docker_socket)) {
			return;
		}
		const group = __("Self Hosting");
		frm.add_custom_button(
			__("Run Restore Drill"),
			async () => {
				await call_api("run_restore_drill", { site: frm.doc.name }, __("Enqueuing the drill"));
				frappe.show_alert(__("Restore drill enqueued: its result lands on this site."));
			},
			group,
		);
		frm.add_custom_button(
			__("Verify Latest Backup"),
			async () => {
				const latest = await frappe.db.get_list("Site Backup", {
					filters: { site: frm.doc.name, status: "Success", files_availability: "Available" },
					order_by: "creation desc",
					limit: 1,
				});
				if (!latest.length) {
					frappe.msgprint(__("This site has no available backup to verify."));
					return;
				}
				const report = await call_api("verify_backup", { site_backup: latest[0].name }, __("Reading the backup back"));
				const result = report.message;
				frappe.msgprint(
					result.ok
						? __("Backup {0}: every file has its recorded size and SHA-256.", [result.backup])
						: __("Backup {0} failed: {1}", [result.backup, result.failed.join("; ")]),
				);
			},
			group,
		);
		frm.add_custom_button(
			__("Check Usage Against Plan"),
			async () => {
				const decision = await call_api("site_usage", { site: frm.doc.name }, __("Measuring the site"));
				const answer = decision.message;
				frappe.msgprint(answer.reason || __("Within the plan's limits ({0}).", [answer.action]));
				frm.reload_doc();
			},
			group,
		);
		const drilled = frm.doc.last_verified_restore
			? __("Last verified restore: {0}.", [frappe.datetime.str_to_user(frm.doc.last_verified_restore)])
			: __("No restore drill has passed yet.");
		frm.dashboard.add_comment(
			`${drilled} ${frappe.utils.escape_html(frm.doc.last_restore_drill_result || "")}`,
			frm.doc.last_verified_restore ? "blue" : "yellow",
			true,
		);
	},
});

frappe.ui.form.on("Site Backup", {
	refresh(frm) {
		if (frm.is_new() || !frm.doc.minio_checksums || frm.doc.files_availability !== "Available") {
			return;
		}
		frm.add_custom_button(__("Verify"), async () => {
			const report = await call_api("verify_backup", { site_backup: frm.doc.name }, __("Reading the backup back"));
			const result = report.message;
			frappe.msgprint(
				result.ok
					? __("Every file has its recorded size and SHA-256 in the bucket.")
					: __("Verification failed: {0}", [result.failed.join("; ")]),
			);
			frm.reload_doc();
		});
	},
});
