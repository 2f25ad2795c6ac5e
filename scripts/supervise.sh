# Sourced by the demo scripts: start processes, stop them all on Ctrl-C or SIGTERM.
#   start NAME COMMAND...   run COMMAND in the background, remembered as NAME
#   supervise               wait: one process ending leaves the others running (kill a
#                           node of the cluster demo and watch the rest carry on); returns
#                           when none is left. Ctrl-C or SIGTERM stops everything started.
pids=()
names=()

stop_all() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

start() {
  local name=$1
  shift
  "$@" &
  pids+=($!)
  names+=("$name")
}

supervise() {
  while true; do
    local alive=()
    for p in "${pids[@]}"; do
      if kill -0 "$p" 2>/dev/null; then alive+=("$p"); fi
    done
    [ ${#alive[@]} -eq 0 ] && return 0
    local status=0
    wait -n "${alive[@]}" || status=$?
    for i in "${!pids[@]}"; do
      if [ -n "${pids[$i]}" ] && ! kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "${names[$i]} (pid ${pids[$i]}) has stopped (status $status); the rest keep running, Ctrl-C stops them" >&2
        unset 'pids[i]' 'names[i]'
      fi
    done
  done
}
