#!/usr/bin/env bash
# Starts or stops one etcd member from DIR/etcd.conf and keeps its PID in DIR/etcd.pid. The demo's
# cluster file names these as the start and stop commands of each member, the way a host without
# systemd would run etcd. Usage: etcd-member.sh start|stop DIR
set -euo pipefail
action=$1
dir=$2
binary=${ETCD_BINARY:-/usr/bin/etcd}

case $action in
start)
    # stdin, stdout and stderr leave the caller's pipes, so the caller does not wait for etcd to exit.
    ( set -a; . "$dir/etcd.conf"; exec "$binary" ) >> "$dir/etcd.log" 2>&1 < /dev/null &
    echo $! > "$dir/etcd.pid"
    ;;
stop)
    if [ -f "$dir/etcd.pid" ]; then
        pid=$(cat "$dir/etcd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$dir/etcd.pid"
    fi
    ;;
*)
    echo "usage: etcd-member.sh start|stop DIR" >&2
    exit 2
    ;;
esac
