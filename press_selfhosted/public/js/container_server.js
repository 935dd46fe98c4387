// A container server (Container Prefix and Docker Socket filled) is run by press_selfhosted through its
// Docker socket: Press's Ansible, SSH and cloud actions do not apply to it (the server refuses them too),
// so its form offers the container actions instead and shows the server's containers and their health.
// Other servers keep Press's form as it is.
function is_container_server(doc) {
	return Boolean(doc.container_prefix && doc.docker_socket);
}

const STATE_COLOURS = { running: "green", healthy: "green", starting: "orange", unhealthy: "red" };

function containers_table(status) {
	const rows = status.containers.map((item) => {
		const health = item.health || item.state;
		const colour = STATE_COLOURS[health] || "red";
		return `<tr>
			<td>${frappe.utils.escape_html(item.name)}</td>
			<td>${frappe.utils.escape_html(item.role)}${item.bench ? ` (${frappe.utils.escape_html(item.bench)})` : ""}</td>
			<td><span class="indicator-pill ${colour}">${frappe.utils.escape_html(health)}</span></td>
			<td class="text-muted small">${frappe.utils.escape_html(item.image)}</td>
		</tr>`;
	});
	const docker = status.docker;
	return `<div class="small text-muted" style="margin-bottom: 8px">
			${__("Docker Engine {0} (API {1}, {2})", [docker.version, docker.api_version, docker.platform].map(frappe.utils.escape_html))}
		</div>
		<table class="table table-bordered table-sm press-selfhosted-containers">
			<thead><tr><th>${__("Container")}</th><th>${__("Role")}</th><th>${__("State")}</th><th>${__("Image")}</th></tr></thead>
			<tbody>${rows.join("") || `<tr><td colspan="4" class="text-muted">${__("No containers yet: set the server up.")}</td></tr>`}</tbody>
		</table>`;
}

async function show_containers(frm) {
	const section = frm.dashboard.add_section(`<div class="text-muted">${__("Asking Docker…")}</div>`, __("Containers"));
	try {
		const status = await frm.call({ method: "container_status", doc: frm.doc, freeze: false });
		section.html(containers_table(status.message));
	} catch (error) {
		section.html(`<div class="text-danger">${__("Docker did not answer: see the message above.")}</div>`);
	}
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
		__("Test Docker Connection"),
		async () => {
			const status = await frm.call("container_status");
			const docker = status.message.docker;
			frappe.msgprint(
				__("Docker Engine {0} (API {1}, {2}) answers at {3}; {4} container(s) of this server.", [
					docker.version,
					docker.api_version,
					docker.platform,
					frappe.utils.escape_html(frm.doc.docker_socket),
					docker.containers,
				]),
				__("Docker reachable"),
			);
		},
		__("Docker"),
	);
	frm.add_custom_button(
		__("Ping Agent"),
		async () => {
			const answer = await frm.call("ping_agent");
			frappe.msgprint(answer.message);
		},
		__("Docker"),
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
	show_containers(frm);
}

for (const doctype of ["Server", "Proxy Server", "Database Server"]) {
	frappe.ui.form.on(doctype, { refresh: container_server_actions });
}
