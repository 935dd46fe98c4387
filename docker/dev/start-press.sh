#!/usr/bin/env bash
# Runs inside the dev stack's press container: makes the bench and the Press site on first start
# (Frappe, Press, and this checkout as an editable app), then runs the bench.
set -euo pipefail
bench_dir=/home/frappe/frappe-bench
site=${PRESS_SITE:-press.localhost}
as_frappe() { su frappe -c "cd $bench_dir 2>/dev/null || cd /home/frappe; $*"; }

# the frappe user drives the host's Docker Engine through the mounted socket
docker_gid=$(stat -c %g /var/run/docker.sock)
getent group "$docker_gid" >/dev/null || groupadd -g "$docker_gid" hostdocker
usermod -aG "$docker_gid" frappe
chown frappe:frappe "$bench_dir"

if [ ! -f "$bench_dir/sites/common_site_config.json" ]; then
  as_frappe "bench init --skip-redis-config-generation --frappe-branch version-15 $bench_dir"
  as_frappe "bench set-config -g db_host mariadb"
  as_frappe "bench set-config -g redis_cache redis://redis-cache:6379"
  as_frappe "bench set-config -g redis_queue redis://redis-queue:6379"
  as_frappe "bench set-config -g redis_socketio redis://redis-queue:6379"
  # Press schedules work on queues of its own besides Frappe's
  as_frappe "bench set-config -g -p workers '{\"sync\": {}, \"build\": {}, \"auto-scale\": {}}'"
  as_frappe "bench get-app press"
  as_frappe "bench get-app /workspace/press_selfhosted"
fi
if [ ! -d "$bench_dir/sites/$site" ]; then
  as_frappe "bench new-site $site --mariadb-root-password \"\$(cat /run/secrets/db_root_password)\" \
    --admin-password \"\$(cat /run/secrets/admin_password)\" --install-app press --install-app press_selfhosted"
  as_frappe "bench --site $site set-config developer_mode 1"
  as_frappe "bench --site $site scheduler enable"
  as_frappe "bench use $site"
fi
exec su frappe -c "cd $bench_dir && bench start"
