# Sourced by the demo scripts: refuse at once, before building anything, when a port the
# demo needs on 127.0.0.1 is taken. Usage: require_free_ports "make demo" "what uses them" PORT...
require_free_ports() {
  local what=$1 uses=$2
  shift 2
  local taken=()
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken+=("$port")
    fi
  done
  if [ ${#taken[@]} -gt 0 ]; then
    echo "$what: port(s) ${taken[*]} on 127.0.0.1 are already in use (another demo or" >&2
    echo "nats-server running?). It needs $uses. Stop what uses them and try again." >&2
    exit 1
  fi
}

# Wait (up to 10 s) until something listens on 127.0.0.1:$1.
wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
