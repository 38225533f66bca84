#!/bin/sh
# Writes Mosquitto's password file from environment variables, then runs Mosquitto.
#
#   MQTT_USERS="hearth demo-devices"   the users (default), one password variable each:
#   MQTT_PASSWORD_hearth, MQTT_PASSWORD_demo_devices   (a "-" in a name becomes "_")
#
# A user without a password is an error: nothing starts with a default password.
# PASSWD_FILE (default /mosquitto/passwd/passwd) and MOSQUITTO_CONF may be overridden; with
# arguments, they are run instead of Mosquitto (tests use that to write the file only).
set -eu
PASSWD_FILE="${PASSWD_FILE:-/mosquitto/passwd/passwd}"
MOSQUITTO_CONF="${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}"
USERS="${MQTT_USERS:-hearth demo-devices}"

mkdir -p "$(dirname "$PASSWD_FILE")"
umask 077
: > "$PASSWD_FILE"
for user in $USERS; do
    var="MQTT_PASSWORD_$(printf '%s' "$user" | tr -c 'A-Za-z0-9_\n' '_')"
    eval "password=\${$var:-}"
    if [ -z "$password" ]; then
        echo "error: $var is not set (the MQTT password of user $user)" >&2
        exit 2
    fi
    mosquitto_passwd -b "$PASSWD_FILE" "$user" "$password"
done
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown mosquitto "$PASSWD_FILE" "$(dirname "$PASSWD_FILE")"
fi

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec /usr/sbin/mosquitto -c "$MOSQUITTO_CONF"
