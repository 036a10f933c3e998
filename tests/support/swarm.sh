#!/usr/bin/env bash
# A Docker Swarm of N nodes on this machine, for wharf's swarm tests.
#
#   swarm.sh up DIR N      start N dockerd daemons, each in its own network and UTS namespace,
#                          joined into one swarm (node 1 is the manager); prints nothing on success
#   swarm.sh down DIR      stop them and remove everything `up` made
#   swarm.sh kill DIR I    SIGKILL node I's dockerd (and its containerd)
#   swarm.sh solo DIR      one dockerd as above, in no swarm (a private engine to restart)
#   swarm.sh stop DIR I SIG  stop node I's dockerd with SIG (TERM: it stops its containers;
#                          KILL: dockerd dies without stopping anything)
#   swarm.sh start DIR I   start node I's dockerd again on the same data
#
# Node I's engine answers on unix://DIR/nodeI/docker.sock. The nodes are connected by veth pairs
# to one bridge that lives in a namespace of its own, so no address or firewall rule of the host
# is touched. What this needs, learnt the hard way:
# - `ip netns exec` remounts /sys and dockerd then fails ("Devices cgroup isn't mounted"):
#   enter the network namespace with nsenter instead;
# - every node would share the host's name: each runs in its own UTS namespace;
# - --iptables=false --bridge=none: the daemons leave the host's firewall alone.
set -euo pipefail

cmd=${1:?usage: swarm.sh up DIR N | down DIR | kill DIR I}
dir=${2:?directory}
# Names must be short (interface names are at most 15 bytes) and unique per cluster.
tag=$(printf '%s' "$dir" | sha256sum | cut -c1-6)
br_ns="wsb-$tag"

node_ns() { echo "wsn-$tag-$1"; }

engine() { # engine I ARGS...: the docker CLI against node I
    local i=$1; shift
    docker -H "unix://$dir/node$i/docker.sock" "$@"
}

start_node() {
    local i=$1 ns nd
    ns=$(node_ns "$i")
    nd="$dir/node$i"
    mkdir -p "$nd/data" "$nd/exec"
    nsenter --net="/run/netns/$ns" unshare --uts --fork sh -c \
        "hostname wharf-node$i && exec dockerd --data-root '$nd/data' --exec-root '$nd/exec' \
            -H 'unix://$nd/docker.sock' --pidfile '$nd/docker.pid' \
            --iptables=false --ip-forward=false --bridge=none --storage-driver=vfs" \
        >"$nd/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do
        engine "$i" info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "node $i's dockerd did not start; its log:" >&2
    tail -n 30 "$nd/dockerd.log" >&2
    return 1
}

up() {
    local n=${3:?node count}
    for tool in dockerd nsenter unshare ip docker; do
        command -v "$tool" >/dev/null || { echo "swarm tests need $tool" >&2; exit 1; }
    done
    mkdir -p "$dir"
    ip netns add "$br_ns"
    ip -n "$br_ns" link set lo up
    ip -n "$br_ns" link add br0 type bridge
    ip -n "$br_ns" link set br0 up
    for i in $(seq 1 "$n"); do
        local ns
        ns=$(node_ns "$i")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add "wsv$tag$i" netns "$ns" type veth peer name "p$i" netns "$br_ns"
        ip -n "$ns" link set "wsv$tag$i" name eth0
        ip -n "$ns" addr add "10.213.0.$((10 + i))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$br_ns" link set "p$i" master br0
        ip -n "$br_ns" link set "p$i" up
    done
    for i in $(seq 1 "$n"); do start_node "$i" & done
    wait
    for i in $(seq 1 "$n"); do engine "$i" info >/dev/null || exit 1; done
    engine 1 swarm init --advertise-addr 10.213.0.11 --listen-addr 10.213.0.11:2377 >/dev/null
    local token
    token=$(engine 1 swarm join-token -q worker)
    for i in $(seq 2 "$n"); do
        engine "$i" swarm join --token "$token" --advertise-addr "10.213.0.$((10 + i))" \
            10.213.0.11:2377 >/dev/null
    done
}

solo() {
    for tool in dockerd nsenter unshare ip docker; do
        command -v "$tool" >/dev/null || { echo "the engine tests need $tool" >&2; exit 1; }
    done
    mkdir -p "$dir"
    ip netns add "$br_ns"
    local ns
    ns=$(node_ns 1)
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    start_node 1
}

stop_node() {
    local i=${3:?node} sig=${4:?signal}
    local pid
    pid=$(cat "$dir/node$i/docker.pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    # KILL: only dockerd is signalled, as in a crash (its containerd follows it by a
    # parent-death signal; see below for what that leaves).
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 240); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    rm -f "$dir/node$i/docker.pid"
    # dockerd's containerd dies with it (parent-death signal) and, reparented to an init that
    # may not reap, can linger as a zombie that its pidfile makes look alive: the next dockerd
    # would wait for it forever. Only a containerd that really runs is left to be adopted.
    local cpidfile="$dir/node$i/exec/containerd/containerd.pid" cpid state
    cpid=$(cat "$cpidfile" 2>/dev/null || true)
    if [ -n "$cpid" ]; then
        state=$(awk '/^State:/ {print $2}' "/proc/$cpid/status" 2>/dev/null || true)
        if [ -z "$state" ] || [ "$state" = Z ]; then
            rm -f "$cpidfile"
        fi
    fi
}

kill_node() {
    local i=${3:?node}
    local pid
    pid=$(cat "$dir/node$i/docker.pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    # containerd is the daemon's child; its shims keep the tasks until they are killed too.
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
}

down() {
    for nd in "$dir"/node*; do
        [ -d "$nd" ] || continue
        local pid
        pid=$(cat "$nd/docker.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for nd in "$dir"/node*; do
        [ -d "$nd" ] || continue
        local pid
        pid=$(cat "$nd/docker.pid" 2>/dev/null || true)
        for _ in $(seq 1 40); do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
        # The shims of the node's containers, found by its exec root, and first their
        # children: the containers' processes, which a killed shim leaves running (reparented
        # to init, spinning once their root file system is removed below).
        for shim in $(pgrep -f -- "$nd/exec" || true); do
            pkill -KILL -P "$shim" 2>/dev/null || true
        done
        pkill -KILL -f -- "$nd/exec" 2>/dev/null || true
    done
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^(wsn-$tag-|$br_ns$)" || true); do
        ip netns del "$ns" || true
    done
    # Mounts the daemons left under the directory (overlay layers, netns files, shm).
    { grep -F " $dir/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$dir"
}

case "$cmd" in
    up) up "$@" ;;
    down) down "$@" ;;
    kill) kill_node "$@" ;;
    solo) solo "$@" ;;
    stop) stop_node "$@" ;;
    start) start_node "${3:?node}" ;;
    *) echo "usage: swarm.sh up DIR N | down DIR | kill DIR I | solo DIR | stop DIR I SIG | start DIR I" >&2; exit 2 ;;
esac
