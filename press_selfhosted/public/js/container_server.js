// A container server (Container Prefix and Docker Socket filled) is run by press_selfhosted through its
// Docker socket: Press's Ansible, SSH and cloud actions do not apply to it (the server refuses them too),
// so its form offers the container actions instead. Other servers keep Press's form as it is.
function is_container_server(doc) {
	return Boolean(doc.container_prefix && doc.docker_socket);
}

function container_server_actions(frm) {
	if (frm.is_new() || !is_container_server(frm.doc)) {
		return;
	}
	frm.clear_custom_buttons();
	frm.add_custom_button(__("Set Up Container Server"), async () => {
		const job = await frm.call("setup_server");
		if (job.message) {
			frappe.msgprint(
				__("Setup job {0} asked for: its steps and output show there; the server turns Active when it succeeds.", [
					`<a href="/app/agent-job/${job.message}">${job.message}</a>`,
				]),
			);
		}
		frm.reload_doc();
	});
	frm.add_custom_button(
		__("Ping Agent"),
		async () => {
			const answer = await frm.call("ping_agent");
			frappe.msgprint(answer.message);
		},
		__("Ping"),
	);
	frm.add_custom_button(
		__("Agent Jobs"),
		() => frappe.set_route("List", "Agent Job", { server: frm.doc.name }),
		__("View"),
	);
	frm.set_intro(
		__("A container server: press_selfhosted runs it through {0}. Press's SSH and Ansible actions do not apply.", [
			frappe.utils.escape_html(frm.doc.docker_socket),
		]),
		"blue",
	);
}

for (const doctype of ["Server", "Proxy Server", "Database Server"]) {
	frappe.ui.form.on(doctype, { refresh: container_server_actions });
}
