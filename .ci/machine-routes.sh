# Sourced by .ci/run and .ci/fresh-check: the machine's own routes, and a watch that compares
# them with a first reading every few seconds while a long step runs, so a route that the
# sandbox added and removed again within the step is still seen.
machine_routes() { ip -4 route show table all; ip -6 route show table all; }

# watch_routes FILE: in the background until killed; appends to FILE every difference it sees.
watch_routes() {
  local report=$1 first now
  first=$(machine_routes)
  while sleep 2; do
    now=$(machine_routes)
    if [ "$now" != "$first" ]; then
      { date -u +%T; diff <(echo "$first") <(echo "$now") || true; } >>"$report"
    fi
  done
}
