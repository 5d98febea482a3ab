#!/usr/bin/env bash
# Start or stop a Spark or Flink engine with Beam's job server on loopback (127.0.0.1), from
# what deploy/engines/install.sh installed:
#   spark: a Spark standalone master and one worker (pyspark's launcher) and Beam's Spark job
#          server, whose Spark driver submits to that master
#   flink: a Flink session cluster, one JobManager and one TaskManager, and Beam's Flink job
#          server, which submits to the JobManager's REST endpoint
# Usage: deploy/engines/engine.sh start|stop|status spark|flink
#        deploy/engines/engine.sh job-args spark|flink   (the Beam flags for a job on it)
#        deploy/engines/engine.sh run spark|flink CMD [ARGS...]
#          runs CMD with the job's flags inserted after its first two words (`rmclean clean`),
#          on the engine if it is up, else on one started for it and stopped afterwards
# Ports (ENGINE_PORT_BASE, default 8099 for spark and 8199 for flink): job endpoint at the
# base, artifacts at base-1, expansion at base-2; the engine's own ports above base+1.
# JVM heaps are small on purpose (ENGINE_HEAP_MB, default 768): the SDK workers, which do the
# work, are Python processes outside them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${ENGINES_DIR:-$root/.engines}"
mkdir -p "$dir" && dir="$(cd "$dir" && pwd)" # absolute: the SDK workers' boot path and GOBIN
usage="usage: engine.sh start|stop|status|job-args|run spark|flink [CMD ...]"
action="${1:?$usage}"
engine="${2:?$usage}"
shift 2
case "$engine" in
  spark) default_base=8099 ;;
  flink) default_base=8199 ;;
  *) echo "engine.sh: unknown engine $engine (spark or flink)" >&2; exit 2 ;;
esac
base="${ENGINE_PORT_BASE:-$default_base}"
heap="${ENGINE_HEAP_MB:-768}"
run="$dir/run/$engine-$base"
host=127.0.0.1
job_port=$base
cluster_port=$((base + 2))   # Spark master / Flink JobManager RPC
ui_port=$((base + 3))        # Spark master web UI / Flink REST
worker_ui_port=$((base + 4)) # Spark worker web UI / Flink TaskManager RPC
driver_ui_port=$((base + 5)) # the Spark driver's (job server's) UI
# What Spark and Flink open in the JDK on Java 17 (their own launchers pass the same).
java_opens=(-XX:+IgnoreUnrecognizedVMOptions)
for pkg in java.lang java.lang.invoke java.lang.reflect java.io java.net java.nio \
  java.util java.util.concurrent java.util.concurrent.atomic java.text java.time \
  sun.nio.ch sun.nio.cs sun.security.action sun.util.calendar; do
  java_opens+=("--add-opens=java.base/$pkg=ALL-UNNAMED")
done

die() { echo "engine.sh: $*" >&2; exit 1; }
need_install() {
  test -f "$dir/$engine-job-server.classpath" && test -x "$dir/bin/boot" ||
    die "not installed: run make engines (deploy/engines/install.sh) first"
}
port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
spark_home() { "$dir/venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'; }

# Start one daemon in the background, its output in $run/<name>.log, its pid in <name>.pid.
daemon() {
  local name="$1"; shift
  nohup "$@" >"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

# Wait until `check` succeeds, or fail naming the log to read.
wait_for() {
  local what="$1" log="$2" check="$3" deadline=$((SECONDS + ${ENGINE_START_TIMEOUT_S:-180}))
  until eval "$check"; do
    ((SECONDS < deadline)) || die "$engine: $what did not come up; see $log"
    for pidfile in "$run"/*.pid; do
      kill -0 "$(cat "$pidfile")" 2>/dev/null ||
        die "$engine: $(basename "$pidfile" .pid) exited; see ${pidfile%.pid}.log"
    done
    sleep 1
  done
}

start_spark() {
  local spark_home
  spark_home="$(spark_home)"
  export SPARK_HOME="$spark_home" SPARK_LOCAL_IP=$host SPARK_DAEMON_MEMORY=256m \
    SPARK_LOG_DIR="$run" SPARK_WORKER_DIR="$run/work" SPARK_NO_DAEMONIZE=1
  export PATH="$dir/venv/bin:$PATH" # the worker's Python for pyspark's own scripts
  daemon spark-master "$spark_home/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host $host --port "$cluster_port" --webui-port "$ui_port"
  wait_for "the Spark master" "$run/spark-master.log" "port_open $cluster_port"
  daemon spark-worker "$spark_home/bin/spark-class" org.apache.spark.deploy.worker.Worker \
    "spark://$host:$cluster_port" --host $host --webui-port "$worker_ui_port" \
    --cores "${ENGINE_CORES:-2}" --memory "$((heap * 4 / 3))m" --work-dir "$run/work"
  wait_for "the Spark worker" "$run/spark-worker.log" \
    "curl -fs http://$host:$ui_port/json/ | grep -q '\"aliveworkers\" *: *[1-9]'"
  # The job server is the Spark driver: Spark settings come in as spark.* system properties.
  # Beam's jars go first (it needs a newer Guava than Spark's 14).
  daemon job-server java -Xmx"${heap}m" "${java_opens[@]}" \
    -Dspark.ui.port="$driver_ui_port" -Dspark.driver.host=$host \
    -Dspark.executor.memory="${heap}m" -Dspark.eventLog.enabled=true \
    -Dspark.eventLog.dir="file://$run/events" \
    -cp "$(cat "$dir/spark-job-server.classpath"):$spark_home/jars/*" \
    org.apache.beam.runners.spark.SparkJobServerDriver \
    --job-host=$host --job-port="$job_port" --artifact-port=$((base - 1)) \
    --expansion-port=$((base - 2)) --spark-master-url="spark://$host:$cluster_port"
  mkdir -p "$run/events"
  wait_for "Beam's Spark job server" "$run/job-server.log" "port_open $job_port"
}

flink_conf() {
  mkdir -p "$run/conf"
  cat >"$run/conf/config.yaml" <<EOF
jobmanager:
  rpc: {address: $host, port: $cluster_port}
  bind-host: $host
  memory: {process.size: ${heap}m}
taskmanager:
  host: $host
  bind-host: $host
  rpc.port: $worker_ui_port
  numberOfTaskSlots: ${ENGINE_CORES:-2}
  # Beam's batch stages hand their output over in blocking partitions, many at once; each
  # reserves sort-shuffle buffers (512 of 32 KiB by default), more than a small TaskManager
  # has for a pipeline of this many stages: 64 each here. The sample's job is 114 Flink
  # vertices and 146 edges (routes, errors, reports, cuts and repairs are branches of their
  # own); Flink's default network memory, a tenth of the TaskManager (3,481 buffers), failed it
  # with "Insufficient number of network buffers", so network memory is fixed well above that.
  memory:
    process.size: $((heap * 3))m
    managed.fraction: 0.1
    network: {min: $((heap / 2))m, max: $((heap / 2))m}
  network.sort-shuffle.min-buffers: 64
rest: {address: $host, bind-address: $host, port: $ui_port}
parallelism.default: ${ENGINE_CORES:-2}
jobstore.expiration-time: 3600
EOF
  cat >"$run/conf/log4j.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
appender.console.name = console
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss,SSS} %-5p %c{1} - %m%n
EOF
}

# The JVM flags and -D settings Flink's own start scripts derive from config.yaml (memory
# sizes, CPU cores) for a JobManager or TaskManager: Flink refuses to start without them.
flink_resources() {
  local cp="$1" which="$2"
  java -cp "$cp" org.apache.flink.runtime.util.bash.BashJavaUtils "$which" --configDir "$run/conf" |
    sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p'
}

start_flink() {
  local cp jm tm
  cp="$(cat "$dir/flink-job-server.classpath")"
  flink_conf
  mapfile -t jm < <(flink_resources "$cp" GET_JM_RESOURCE_PARAMS)
  mapfile -t tm < <(flink_resources "$cp" GET_TM_RESOURCE_PARAMS)
  # shellcheck disable=SC2086 # the derived flags are space-separated words
  daemon flink-jobmanager java ${jm[0]} "${java_opens[@]}" \
    -Dlog4j.configurationFile="file:$run/conf/log4j.properties" -cp "$cp" \
    org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint \
    --configDir "$run/conf" ${jm[1]:-}
  wait_for "the Flink JobManager" "$run/flink-jobmanager.log" \
    "curl -fs http://$host:$ui_port/overview >/dev/null"
  # shellcheck disable=SC2086
  daemon flink-taskmanager java ${tm[0]} "${java_opens[@]}" \
    -Dlog4j.configurationFile="file:$run/conf/log4j.properties" -cp "$cp" \
    org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir "$run/conf" ${tm[1]}
  wait_for "the Flink TaskManager" "$run/flink-taskmanager.log" \
    "curl -fs http://$host:$ui_port/overview | grep -q '\"taskmanagers\" *: *[1-9]'"
  daemon job-server java -Xmx"$((heap / 2))m" "${java_opens[@]}" \
    -Dlog4j.configurationFile="file:$run/conf/log4j.properties" -cp "$cp" \
    org.apache.beam.runners.flink.FlinkJobServerDriver \
    --job-host=$host --job-port="$job_port" --artifact-port=$((base - 1)) \
    --expansion-port=$((base - 2)) --flink-master="$host:$ui_port" --flink-conf-dir="$run/conf"
  wait_for "Beam's Flink job server" "$run/job-server.log" "port_open $job_port"
}

stop() {
  local pidfile pid
  # The job server first, then the workers, then the master.
  for name in job-server spark-worker flink-taskmanager spark-master flink-jobmanager; do
    pidfile="$run/$name.pid"
    test -f "$pidfile" || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

# The Beam flags for a job on this engine: its job endpoint, and SDK workers as processes
# started by Beam's boot program in the engine environment.
job_args() {
  local env_config
  env_config=$(printf '{"command": "%s", "env": {"PATH": "%s", "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1"}}' \
    "$dir/bin/boot" "$dir/venv/bin:/usr/local/bin:/usr/bin:/bin")
  printf '%s\n' "--job_endpoint=$host:$job_port" --environment_type=PROCESS \
    "--environment_config=$env_config"
}

start() {
  need_install
  if port_open "$job_port"; then die "port $job_port is in use (another job server?)"; fi
  mkdir -p "$run"
  trap 'stop' EXIT # whatever stops the start half-way stops what it started
  "start_$engine"
  trap - EXIT
  echo "engine.sh: $engine is up; Beam job endpoint $host:$job_port (logs in $run)"
}

# CMD's first two words, the job's flags, then the rest of CMD (whose own flags win).
run_on_engine() {
  (($# >= 2)) || die "run needs a command, e.g. .engines/venv/bin/rmclean clean --config ..."
  local started=0 code=0
  if ! port_open "$job_port"; then
    start
    started=1
    # Stopped however the command ends; Ctrl-C reaches the command, which cancels its job.
    trap 'stop' EXIT
  fi
  local -a flags
  mapfile -t flags < <(job_args)
  "$1" "$2" "${flags[@]}" "${@:3}" || code=$?
  return "$code"
}

case "$action" in
  start) start ;;
  run) run_on_engine "$@" ;;
  stop) stop ;;
  status)
    port_open "$job_port" && echo "$engine: job endpoint $host:$job_port is up" ||
      { echo "$engine: not running at $host:$job_port"; exit 1; }
    ;;
  job-args) job_args ;;
  *) die "unknown action $action (start, stop, status, job-args or run)" ;;
esac
