#!/bin/sh
set -eu
datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
  password=$(cat "${MARIADB_ROOT_PASSWORD_FILE:?MARIADB_ROOT_PASSWORD_FILE must name a file holding the root password}")
  chown -R mysql:mysql "$datadir"
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  for _ in $(seq 1 60); do
    mariadb --socket=/run/mysqld/init.sock -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.5
  done
  escaped=$(printf '%s' "$password" | sed "s/'/''/g")
  # as the official image: root@MARIADB_ROOT_HOST (default %) besides root@localhost
  host=$(printf '%s' "${MARIADB_ROOT_HOST:-%}" | sed "s/'/''/g")
  remote=""
  if [ "$host" != "localhost" ]; then
    remote="CREATE USER IF NOT EXISTS 'root'@'$host' IDENTIFIED BY '$escaped';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'$host' WITH GRANT OPTION;"
  fi
  mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
$remote
ALTER USER 'root'@'localhost' IDENTIFIED BY '$escaped';
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
fi
if [ "$1" = "mariadbd" ]; then
  shift
  exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 --skip-name-resolve "$@"
fi
exec "$@"
