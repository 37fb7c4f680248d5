#!/bin/sh
# Runs inside scripts/ktls-vm's guest (e2e/broker/ktls_vm.py starts it): the broker, plus what the test on
# the host asks for through files in the control directory CTL (shared with the host):
#   tls_stat      a copy of the guest kernel's /proc/net/tls_stat, refreshed every ~0.3 s
#   broker_stat   a copy of the broker's /proc/PID/stat, likewise (bench/ktls reads its CPU time)
#   trace-start   -> strace attaches to the broker (writing CTL/trace), then CTL/trace-started appears
#   trace-stop    -> strace detaches (SIGINT, which flushes the trace), then CTL/trace-done appears
# usage: guest.sh CTL STRACE_SYSCALLS BROKER [ARGS]...
CTL=$1 SYSCALLS=$2
shift 2
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM
tracer=
while kill -0 "$pid" 2>/dev/null; do
  cat /proc/net/tls_stat >"$CTL/tls_stat.tmp" && mv "$CTL/tls_stat.tmp" "$CTL/tls_stat"
  cat "/proc/$pid/stat" >"$CTL/broker_stat.tmp" 2>/dev/null && mv "$CTL/broker_stat.tmp" "$CTL/broker_stat"
  if [ -e "$CTL/trace-start" ] && [ -z "$tracer" ] && [ ! -e "$CTL/trace-done" ]; then
    strace -f -e "trace=$SYSCALLS" -e signal=none -s 0 -o "$CTL/trace" -p "$pid" 2>"$CTL/trace.err" &
    tracer=$!
    # strace reports each thread it attached to on stderr.
    while kill -0 "$tracer" 2>/dev/null && ! grep -q attached "$CTL/trace.err"; do sleep 0.1; done
    sleep 1
    touch "$CTL/trace-started"
  fi
  if [ -e "$CTL/trace-stop" ] && [ -n "$tracer" ]; then
    kill -INT "$tracer"
    wait "$tracer"
    tracer=
    touch "$CTL/trace-done"
  fi
  sleep 0.3
done
wait "$pid"
