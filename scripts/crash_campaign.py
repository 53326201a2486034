#!/usr/bin/env python3
"""crash_campaign.py - the crash campaign's orchestrator (run through scripts/crash-campaign.sh).

Owns one campaign: a work directory with the xatm config, the decision log and xatmd's log;
one xatmd (TM id "camp", restarted whenever a trial needs it); per trial three
`xatm-transfer run` APs (2 workers each) moving money between PostgreSQL and MariaDB, ONE
injected fault chosen from the trial's seed, the restart of whatever the fault killed, the
wait for convergence, and the checks. It never builds anything and never starts the
database servers: the binaries (XATMD, XATMCTL, XATM_TRANSFER) and the servers'
coordinates (XATM_TEST_*; XATM_TEST_SERVERS_DIR for the database crash faults) come from the
environment, set by crash-campaign.sh or by meson's test environment.

Trial k of a campaign with seed S has seed S + k - 1, and everything random in that trial
(the fault, its point, count and timing, the APs' seeds) comes from random.Random(seed), so
`--trials 1 --seed SEED` (or `--replay SEED`) replays one trial alone (the timing of the
processes is not reproducible, the choices are).

Invariants checked after every trial, with plain SQL (psql / mariadb clients), once no
prepared branch of this TM and no open transaction is left on either server (bounded by
--converge-timeout; a trial that does not converge is a violation):
  (a) the sum of all balances over both databases is unchanged, and each side's balances
      moved by exactly its ledger rows of this trial;
  (b) every transfer id of this trial is on both sides with the same amount, or on
      neither; every --full-check-every trials and at the end, the whole ledgers agree in
      count and sum, and the last check runs `xatm-transfer check` over everything;
  (c) every transfer whose commit an AP saw return 0 (its --committed-log) is on both sides;
  (d) no prepared branch of this TM is left;
  (e) the time from the moment the fault was over (the restart, the SIGCONT, the AP's
      death) to convergence, which includes the APs finishing their remaining work.
Also a violation: xatmd dying when no fault of this trial was meant to kill it, not
stopping after a disk-full log write, not starting again, or exiting non-zero at SIGTERM;
an AP hanging past --ap-timeout.

Process rules: every AP and xatmd runs in its own session (process group), so a kill -9
of an AP takes all of it, and Ctrl-C reaches only this script, which then resumes anything
it stopped, kills the APs, stops xatmd and prints the summary so far. Nothing is left
running when this script returns.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time

TM_ID = "camp"
FORMAT_ID = 0x78614D43  # "xaMC": the campaign's own XA formatID
ACCOUNTS = 1000
BALANCE = 1000
N_APS = 3
WORKERS = 2
TXN_TIMEOUT_S = 3.0  # tm.transaction_timeout of the campaign config
# tm.request_timeout: how long an AP waits for xatmd. A stopped xatmd is stopped for the
# transaction timeout + 0.5..1.5 s, so about half of those stops outlast it too (the AP then
# gives up on its VOTE with "outcome unknown" while xatmd may still commit).
REQUEST_TIMEOUT_S = 4.0

# The TM's protocol steps (kill at the n-th hit); n is drawn from 1..max_n, where max_n
# keeps the point inside one trial's work (about 1500 transactions over 3 APs).
TM_STEP_POINTS = {
    # BEGIN reaches xatmd once per 64 transactions of a connection (gtrid leases,
    # docs/protocol.md) and at every (re)connect: about 5 per worker, 6 workers
    "tm.after_begin": 30,
    "tm.after_enlist": 1800,
    "tm.before_commit_force": 900,
    "tm.after_commit_force": 900,
    "tm.after_decision_sent": 900,
    "tm.before_end": 900,
    "tm.before_log_write": 400,
}
# Recovery's steps: only reached when recovery has work, so they are armed in an xatmd
# started right after a kill at tm.after_commit_force (which leaves commits and rollbacks).
TM_RECOVERY_POINTS = [
    "tm.recovery_before_commit",
    "tm.recovery_between_branches",
    "tm.recovery_after_commit",
    "tm.recovery_before_rollback",
]
# The AP's steps, per AP process (about 500 transactions each).
AP_POINTS = {
    "ap.after_begin": 300,
    "ap.after_start": 600,
    "ap.before_prepare": 300,
    "ap.between_prepares": 300,
    "ap.after_prepare": 300,
    "ap.after_vote_sent": 300,
    "ap.after_decision": 300,
    "ap.between_commits": 300,
    "ap.after_commits": 300,
}
# Where a stop (SIGSTOP longer than the transaction timeout) is most telling.
TM_STOP_POINTS = ["tm.after_begin", "tm.before_commit_force", "tm.after_commit_force",
                  "tm.after_decision_sent", "tm.before_end"]

# 3PC adds its own steps (docs/protocols.md); the points above stay armed too, since the
# DoCommit half of 3PC runs through the same code. An abort after PreCommit is rare in a
# trial (a branch failing at PREPARE after a yes at CanCommit), so its points get small n
# and may not fire.
TM_STEP_POINTS_3PC = {
    "tm.before_precommit_force": 900,
    "tm.after_precommit_force": 900,
    "tm.after_precommit_sent": 900,
    "tm.before_abort_force": 2,
    "tm.after_abort_force": 2,
}
AP_POINTS_3PC = {
    "ap.after_cancommit_checks": 300,
    "ap.after_cancommit_sent": 300,
    "ap.after_precommit": 300,
}
TM_STOP_POINTS_3PC = ["tm.after_precommit_force", "tm.after_precommit_sent"]

# --decider [pg|my] (tm.decision_rm, docs/protocols.md "Decision in a branch"): the AP's steps
# around the decider's commit. xatmd forces no COMMIT for such a transaction, so AP
# DECIDER_3PC_AP runs three-phase commit instead (3PC never decides in a branch): its
# PRECOMMIT and COMMIT records keep xatmd's log, its faults and its recovery in play in the
# same trials, beside the two APs whose transactions are decided in the decider's branch.
AP_POINTS_DECIDER = {
    "ap.decider.before_commit": 300,
    "ap.decider.after_commit": 300,
}
DECIDER_3PC_AP = 0

# The partition trials (3PC only, docs/protocols.md "Partitions"): one AP, one worker; the
# path between it and xatmd is cut right after xatmd sent PreCommit for its
# PARTITION_AT-th transaction (the fault action "partition": xatmd keeps the connection
# open and ignores it). Timeouts chosen so that, with participant_timeout_action commit,
# xatmd's abort (ack missing after PRECOMMIT_TIMEOUT_S) has rolled back the PostgreSQL
# branch before libxatm commits on its own (PARTICIPANT_TIMEOUT_S), while the MariaDB
# branch is still held by the AP's session (xatmd fences it only at the transaction's
# deadline, PARTITION_TXN_TIMEOUT_S).
PARTITION_AT = 3
PRECOMMIT_TIMEOUT_S = 1.0
PARTICIPANT_TIMEOUT_S = 4.0
PARTITION_TXN_TIMEOUT_S = 20.0
PARTITION_REQUEST_TIMEOUT_S = 8.0

# fault kind -> weight (the fault distribution of a campaign)
FAULT_WEIGHTS = [
    ("tm-kill-point", 18),
    ("tm-kill-time", 6),
    ("tm-kill-recovery", 8),
    ("ap-kill-point", 16),
    ("ap-kill-time", 5),
    ("rm-kill", 12),
    ("log-enospc", 6),
    ("log-torn", 7),
    ("ap-stop", 11),
    ("tm-stop", 11),
]


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the campaign."""


def now():
    return time.monotonic()


def say(*parts):
    print(*parts, flush=True)


# ------------------------------------------------------------------------ plain SQL

class Sql:
    """Plain SQL through the psql and mariadb clients (never libxatm)."""

    def __init__(self, env):
        self.env = env          # where the XATM_TEST_* coordinates are
        self.pg_env = dict(os.environ, PGPASSWORD=env["XATM_TEST_PG_PASSWORD"],
                           PGCONNECT_TIMEOUT="3")
        self.my_env = dict(os.environ, MYSQL_PWD=env["XATM_TEST_MY_PASSWORD"])
        self.pg_args = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                        "-h", env["XATM_TEST_PG_HOST"], "-p", env["XATM_TEST_PG_PORT"],
                        "-U", env["XATM_TEST_PG_USER"], "-d", env["XATM_TEST_PG_DB"]]
        self.my_args = ["mariadb", "--batch", "--skip-column-names", "--connect-timeout=3",
                        "-h", env["XATM_TEST_MY_HOST"], "-P", env["XATM_TEST_MY_PORT"],
                        "-u", env["XATM_TEST_MY_USER"], env["XATM_TEST_MY_DB"]]
        self.last_error = ""    # why the last call returned None

    SEP = "@@campaign-separator@@"

    def _run(self, args, env, stdin):
        try:
            p = subprocess.run(args, input=stdin, env=env, capture_output=True, text=True,
                               timeout=30)
        except subprocess.TimeoutExpired:
            self.last_error = "%s timed out" % args[0]
            return None
        if p.returncode != 0:
            self.last_error = "%s: %s" % (args[0], p.stderr.strip()[:500])
            return None
        return p.stdout

    def _split(self, out, n):
        results, cur = [], []
        for line in out.splitlines():
            if line == self.SEP:
                results.append(cur)
                cur = []
            else:
                cur.append(line.split("\t") if "\t" in line else [line])
        results.append(cur)
        return results if len(results) == n else None

    def pg(self, *queries):
        """Runs the queries; a list of row lists (rows = lists of column strings), or None."""
        text = (";\nSELECT '%s';\n" % self.SEP).join(queries) + ";\n"
        out = self._run(self.pg_args + ["-F", "\t"], self.pg_env, text)
        return None if out is None else self._split(out, len(queries))

    def my(self, *queries):
        text = (";\nSELECT '%s';\n" % self.SEP).join(queries) + ";\n"
        out = self._run(self.my_args, self.my_env, text)
        return None if out is None else self._split(out, len(queries))


# ------------------------------------------------------------------------ processes

def proc_state(pid):
    """The state letter of /proc/pid/stat ('T' stopped, 'Z' zombie), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def signal_group(p, sig):
    """Sends sig to the process group of Popen p (its own session); quiet if it is gone."""
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


class Xatmd:
    """The campaign's one xatmd: started in its own session, its stderr appended to log."""

    def __init__(self, binary, config, log_path):
        self.binary = binary    # the xatmd executable
        self.config = config    # its config file
        self.log_path = log_path  # stderr of every incarnation, with campaign markers
        self.proc = None        # the current incarnation (Popen), None before the first
        self.fault = None       # XATM_FAULT it runs with, None when unarmed
        self.fault_fired = False  # its "xatm fault:" line has been seen
        self.log_offset = 0     # where this incarnation's lines start in the log

    def note(self, text):
        with open(self.log_path, "a") as f:
            f.write("=== campaign: %s ===\n" % text)

    def log_since(self, offset=None):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset if offset is None else offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, fault=None, fault_seed=0, why="", timeout=40.0):
        """Starts xatmd and waits for its ready line. Returns "ready", or "died" (exit
        status in self.proc.returncode), or "timeout" (then it is killed)."""
        env = dict(os.environ)
        env.pop("XATM_FAULT", None)
        env.pop("XATM_FAULT_SEED", None)
        if fault:
            env["XATM_FAULT"] = fault
            env["XATM_FAULT_SEED"] = str(fault_seed)
        self.note("start xatmd%s%s" % (" XATM_FAULT=" + fault if fault else "",
                                        " (" + why + ")" if why else ""))
        self.log_offset = self.log_size()
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.config], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, env=env, start_new_session=True)
        logf.close()
        self.fault = fault
        self.fault_fired = False
        deadline = now() + timeout
        while now() < deadline:
            text = self.log_since()
            if "xatmd: ready tm=" in text:
                return "ready"
            if self.proc.poll() is not None:
                self.fault_fired = bool(fault) and "xatm fault:" in self.log_since()
                return "died"
            time.sleep(0.02)
        self.kill()
        return "timeout"

    def fired(self):
        """True once the armed fault has fired in this incarnation (its line is logged)."""
        if self.fault and not self.fault_fired and "xatm fault:" in self.log_since():
            self.fault_fired = True
        return self.fault_fired

    def kill(self):
        if self.proc is None:
            return
        signal_group(self.proc, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=20.0):
        """SIGTERM (after SIGCONT) and wait; returns the exit status, or None if it had to
        be killed (it did not stop within timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        signal_group(self.proc, signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def wait_exit(self, timeout):
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


class Ap:
    """One `xatm-transfer run` process, in its own session."""

    def __init__(self, no, binary, config, tdir, seed, transfers, trial, fault=None,
                 workers=WORKERS, abort_percent=5, protocol=None):
        self.no = no            # 0..N_APS-1 in its trial
        self.prefix = "t%da%d" % (trial, no)  # its transfer ids: <prefix>-<worker>-<n>
        self.fault = fault      # its XATM_FAULT, or None
        self.out_path = os.path.join(tdir, "ap%d.out" % no)            # stdout + stderr
        self.committed_path = os.path.join(tdir, "committed.%d" % no)  # --committed-log
        env = dict(os.environ)
        env.pop("XATM_FAULT", None)
        if fault:
            env["XATM_FAULT"] = fault
        out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "-c", config, "run", "--workers", str(workers), "--transfers",
             str(transfers), "--seed", str(seed), "--abort-percent", str(abort_percent),
             "--id-prefix", self.prefix,
             "--reconnect-timeout", "30", "--committed-log", self.committed_path]
            + (["--protocol", protocol] if protocol else []),
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
            start_new_session=True)
        out.close()
        self.pid = self.proc.pid
        self.ended_at = None      # when it was first seen gone

    def alive(self):
        if self.proc.poll() is None:
            return True
        if self.ended_at is None:
            self.ended_at = now()
        return False

    def output(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def committed_ids(self):
        ids = []
        try:
            with open(self.committed_path) as f:
                for line in f:
                    if line.endswith("\n") and line.strip():
                        ids.append(line.strip())
        except OSError:
            pass
        return ids

    def kill(self):
        signal_group(self.proc, signal.SIGCONT)
        signal_group(self.proc, signal.SIGKILL)
        self.proc.wait()
        self.alive()


# ------------------------------------------------------------------------ faults

def pick_fault(rng, have_servers_dir, protocol="2pc", decider=False):
    """The one fault of a trial, as a dict: kind, desc (printed) and its parameters."""
    tm_points, ap_points, tm_stop_points = TM_STEP_POINTS, AP_POINTS, TM_STOP_POINTS
    if decider:
        # the 3PC AP's points too (DECIDER_3PC_AP); only that AP's transactions reach the
        # force points, a third of the work
        tm_points = {k: (v if k in ("tm.after_begin", "tm.after_enlist") else max(1, v // N_APS))
                     for k, v in dict(TM_STEP_POINTS, **TM_STEP_POINTS_3PC).items()}
        ap_points = dict(AP_POINTS, **AP_POINTS_DECIDER, **AP_POINTS_3PC)
        tm_stop_points = TM_STOP_POINTS + TM_STOP_POINTS_3PC
    if protocol == "3pc":
        tm_points = dict(TM_STEP_POINTS, **TM_STEP_POINTS_3PC)
        ap_points = dict(AP_POINTS, **AP_POINTS_3PC)
        tm_stop_points = TM_STOP_POINTS + TM_STOP_POINTS_3PC
    kinds = [(k, w) for k, w in FAULT_WEIGHTS if have_servers_dir or k != "rm-kill"]
    kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
    f = {"kind": kind, "delay": round(rng.uniform(0.2, 1.6), 2),
         "stop_for": round(TXN_TIMEOUT_S + rng.uniform(0.5, 1.5), 2),
         "ap": rng.randrange(N_APS), "down_for": round(rng.uniform(0.0, 0.6), 2),
         "tm_fault": None, "ap_fault": None, "fault_seed": rng.randrange(1 << 32)}
    if kind == "tm-kill-point":
        point = rng.choice(sorted(tm_points))
        f["tm_fault"] = "%s@%d" % (point, rng.randint(1, tm_points[point]))
        f["desc"] = "kill xatmd at %s" % f["tm_fault"]
    elif kind == "tm-kill-time":
        f["desc"] = "kill -9 xatmd at %.2f s" % f["delay"]
    elif kind == "tm-kill-recovery":
        f["tm_fault"] = "tm.after_commit_force@%d" % rng.randint(
            1, min(700, tm_points["tm.after_commit_force"]))
        f["recovery_fault"] = "%s@%d" % (rng.choice(TM_RECOVERY_POINTS), rng.randint(1, 3))
        f["desc"] = "kill xatmd at %s, then in recovery at %s" % (f["tm_fault"],
                                                                 f["recovery_fault"])
    elif kind == "ap-kill-point":
        point = rng.choice(sorted(ap_points))
        if decider and point in AP_POINTS_3PC:
            f["ap"] = DECIDER_3PC_AP  # the only AP that reaches it
        f["ap_fault"] = "%s@%d" % (point, rng.randint(1, ap_points[point]))
        f["desc"] = "kill AP %d at %s" % (f["ap"], f["ap_fault"])
    elif kind == "ap-kill-time":
        f["desc"] = "kill -9 AP %d at %.2f s" % (f["ap"], f["delay"])
    elif kind == "rm-kill":
        f["rm"] = rng.choice(["pg", "my"])
        f["desc"] = "kill -9 %s at %.2f s, restart after %.2f s" % (
            "PostgreSQL" if f["rm"] == "pg" else "MariaDB", f["delay"], f["down_for"])
    elif kind == "log-enospc":
        f["tm_fault"] = "tm.log_write@%d:enospc" % rng.randint(1, 400)
        f["desc"] = "decision log disk full at %s" % f["tm_fault"]
    elif kind == "log-torn":
        f["tm_fault"] = "tm.log_write@%d:torn" % rng.randint(1, 400)
        f["desc"] = "torn decision log write at %s" % f["tm_fault"]
    elif kind == "ap-stop":
        if rng.random() < 0.5:
            point = rng.choice(sorted(ap_points))
            if decider and point in AP_POINTS_3PC:
                f["ap"] = DECIDER_3PC_AP
            f["ap_fault"] = "%s@%d:stop" % (point, rng.randint(1, ap_points[point] // 2))
            f["desc"] = "stop AP %d at %s for %.2f s" % (f["ap"], f["ap_fault"], f["stop_for"])
        else:
            f["desc"] = "SIGSTOP AP %d at %.2f s for %.2f s" % (f["ap"], f["delay"], f["stop_for"])
    elif kind == "tm-stop":
        if rng.random() < 0.5:
            point = rng.choice(tm_stop_points)
            f["tm_fault"] = "%s@%d:stop" % (point, rng.randint(1, min(600, tm_points[point])))
            f["desc"] = "stop xatmd at %s for %.2f s" % (f["tm_fault"], f["stop_for"])
        else:
            f["desc"] = "SIGSTOP xatmd at %.2f s for %.2f s" % (f["delay"], f["stop_for"])
    return f


# ------------------------------------------------------------------------ the campaign

class Campaign:
    """One campaign: set-up, the trials, the checks and the report."""

    def __init__(self, args):
        self.args = args                 # the command line
        self.env = os.environ            # binaries and servers come from here
        self.work = args.work_dir        # config, decision log, xatmd.log, trials/
        self.sql = Sql(self.env)         # plain SQL to both servers
        self.xatmd_bin = self.env["XATMD"]
        self.transfer_bin = self.env["XATM_TRANSFER"]
        self.servers_dir = self.env.get("XATM_TEST_SERVERS_DIR", "")  # "": no RM crashes
        self.servers_sh = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers.sh")
        self.config = os.path.join(self.work, "xatm.yaml")
        self.tm = Xatmd(self.xatmd_bin, self.config, os.path.join(self.work, "xatmd.log"))
        self.aps = []                    # the current trial's APs
        self.stopped = []                # Popen objects we SIGSTOPped and must SIGCONT
        self.results = []                # every finished Trial
        self.violations = 0              # trials with a violation (+1 for the final check)
        self.max_conv = 0.0              # longest convergence of a passing trial
        self.keep_dir = args.keep_dir    # where failing trials go ("" until the first)
        self.balances = None             # (pg_sum, my_sum) after the previous trial
        self.expected_total = 2 * ACCOUNTS * BALANCE  # sum of both sides after each trial
        self.committed_all = os.path.join(self.work, "committed-all.txt")  # every receipt
        self.fired = {}                  # fault kind -> [trials it fired in, trials]

    # ---------------------------------------------------------------- set-up

    def write_config(self, action="wait", partition=False):
        """The campaign's config. 3PC trials run with participant_timeout_action `wait`
        (the mode that must show no violation); the partition trials pick the action and
        their own timeouts (see PARTITION_AT)."""
        e = self.env
        os.makedirs(self.work, exist_ok=True)
        txn_s, req_s = TXN_TIMEOUT_S, REQUEST_TIMEOUT_S
        three = ""
        if self.args.protocol == "3pc" or self.args.decider:  # --decider: DECIDER_3PC_AP
            pre_s, part_s = TXN_TIMEOUT_S, TXN_TIMEOUT_S
            if partition:
                txn_s, req_s = PARTITION_TXN_TIMEOUT_S, PARTITION_REQUEST_TIMEOUT_S
                pre_s, part_s = PRECOMMIT_TIMEOUT_S, PARTICIPANT_TIMEOUT_S
            three = ("  precommit_timeout: %dms\n  participant_timeout: %dms\n"
                     "  participant_timeout_action: %s\n" % (pre_s * 1000, part_s * 1000,
                                                              action))
        if self.args.decider:
            three += "  decision_rm: %s\n" % self.args.decider
        with open(self.config, "w") as f:
            f.write("""# written by scripts/crash_campaign.py
tm:
  id: %s
  socket: %s/xatmd.sock
  admin_socket: %s/xatmd-admin.sock
  log_dir: %s/log
  log_segment_size: 64KiB
  format_id: 0x%08x
  protocol: %s
  transaction_timeout: %dms
  request_timeout: %dms
  recovery_interval: 500ms
%srms:
  - name: pg
    type: postgresql
    host: %s
    port: %s
    user: %s
    password: %s
    database: %s
    connect_timeout: 2s
  - name: my
    type: mysql
    host: %s
    port: %s
    user: %s
    password: %s
    database: %s
    connect_timeout: 2s
""" % (TM_ID, self.work, self.work, self.work, FORMAT_ID, self.args.protocol,
       int(txn_s * 1000), int(req_s * 1000), three,
       e["XATM_TEST_PG_HOST"], e["XATM_TEST_PG_PORT"], e["XATM_TEST_PG_USER"],
       e["XATM_TEST_PG_PASSWORD"], e["XATM_TEST_PG_DB"],
       e["XATM_TEST_MY_HOST"], e["XATM_TEST_MY_PORT"], e["XATM_TEST_MY_USER"],
       e["XATM_TEST_MY_PASSWORD"], e["XATM_TEST_MY_DB"]))

    def setup(self):
        self.write_config()
        r = self.tm.start(why="campaign start")
        if r != "ready":
            sys.stderr.write("crash-campaign: xatmd did not start (%s); its log:\n%s\n"
                             % (r, self.tm.log_since()))
            return False
        # leftovers of an earlier campaign on these servers hold locks: let recovery end them
        ok, _, pending = self.wait_converged(deadline=now() + 60)
        if not ok:
            sys.stderr.write("crash-campaign: branches of TM %s left by an earlier run are "
                             "still prepared after 60 s (%s)\n" % (TM_ID, pending))
            return False
        p = subprocess.run([self.transfer_bin, "-c", self.config, "setup", "--accounts",
                            str(ACCOUNTS), "--balance", str(BALANCE)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write("crash-campaign: xatm-transfer setup failed:\n%s%s"
                             % (p.stdout, p.stderr))
            return False
        self.balances = (ACCOUNTS * BALANCE, ACCOUNTS * BALANCE)
        open(self.committed_all, "w").close()
        return True

    # ---------------------------------------------------------------- convergence

    def pending_work(self):
        """What still keeps the servers from converged (a list of strings; empty = done)."""
        pending = []
        gid_prefix = "xatm:%08x:%s." % (FORMAT_ID, TM_ID)
        pg = self.sql.pg(
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%s%%'" % gid_prefix,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()")
        if pg is None:
            pending.append("PostgreSQL unreachable (%s)" % self.sql.last_error)
        else:
            if pg[0][0][0] != "0":
                pending.append("%s prepared on PostgreSQL" % pg[0][0][0])
            if pg[1][0][0] != "0":
                pending.append("%s idle-in-transaction PostgreSQL sessions" % pg[1][0][0])
        my = self.sql.my("XA RECOVER",
                         "SELECT count(*) FROM information_schema.innodb_trx "
                         "WHERE trx_mysql_thread_id <> CONNECTION_ID()")
        if my is None:
            pending.append("MariaDB unreachable (%s)" % self.sql.last_error)
        else:
            ours = [r for r in my[0] if len(r) >= 4 and r[0] == str(FORMAT_ID)
                    and r[3].startswith(TM_ID + ".")]
            if ours:
                pending.append("%d prepared on MariaDB" % len(ours))
            if my[1][0][0] != "0":
                pending.append("%s open InnoDB transactions" % my[1][0][0])
        return pending

    def wait_converged(self, trial=None, deadline=None):
        """Polls until no AP runs, xatmd is up and pending_work() is empty, at most until
        deadline, or converge_timeout after the trial's t0 (which a restart of xatmd in the
        meantime moves). Returns (ok, time converged, what was pending at the deadline)."""
        pending = ["not polled"]
        while True:
            if trial is not None:
                deadline = trial.t0 + self.args.converge_timeout
            self.watch_xatmd(trial)
            pending = []
            if any(a.alive() for a in self.aps):
                pending.append("APs running")
            if not self.tm.alive():
                pending.append("xatmd down")
            if not pending:
                pending = self.pending_work()
            if not pending:
                return True, now(), []
            if now() >= deadline:
                return False, now(), pending
            time.sleep(0.1)

    # ---------------------------------------------------------------- xatmd watchdog

    def watch_xatmd(self, trial):
        """Keeps xatmd up during a trial. Its death is expected after its armed fault fired
        (it then comes back unarmed, or armed with the trial's recovery fault) or after the
        campaign killed it; any other death is a violation. After a disk-full fault it must
        stop by itself."""
        if trial is None:
            return
        tm = self.tm
        if tm.alive() and tm.fault and tm.fault.endswith(":stop") and \
                proc_state(tm.proc.pid) == "T" and tm.proc not in self.stopped:
            # its stop point was reached late (e.g. by recovery after the APs finished)
            trial.fired = True
            trial.event("xatmd stopped at %s" % tm.fault)
            time.sleep(trial.fault["stop_for"])
            signal_group(tm.proc, signal.SIGCONT)
            trial.t0 = now()
        if tm.alive():
            if tm.fault and tm.fault.endswith(":enospc") and tm.fired():
                trial.fired = True
                if trial.enospc_at is None:
                    trial.enospc_at = now()
                elif now() - trial.enospc_at > 15:
                    trial.violation("xatmd still running 15 s after its decision log "
                                    "filled up; killed")
                    trial.killed_tm = True
                    tm.kill()
            return
        rc = tm.proc.returncode
        next_fault = None
        if tm.fault and tm.fired():
            trial.fired = True
            trial.event("xatmd ended at its armed fault %s (status %s)" % (tm.fault, rc))
            trial.fired_points.append(tm.fault)
            if tm.fault.endswith(":enospc") and rc != 1 and not trial.killed_tm:
                trial.violation("xatmd exited with status %s after its decision log filled "
                                "up, expected 1" % rc)
            if trial.restart_fault and not trial.restarted_armed:
                trial.restarted_armed = True
                next_fault = trial.restart_fault
        elif not trial.killed_tm:
            trial.violation("xatmd died unexpectedly (status %s)" % rc)
        trial.killed_tm = False
        trial.enospc_at = None
        self.restart_tm(trial, next_fault)

    def restart_tm(self, trial, fault=None):
        for attempt in range(3):
            r = self.tm.start(fault=fault, why="trial %d" % trial.no)
            if r == "ready":
                trial.t0 = now()
                return True
            if r == "died" and fault and self.tm.fired():
                trial.fired = True
                trial.event("xatmd died at %s during start-up" % fault)
                trial.fired_points.append(fault)
                fault = None
                continue
            trial.violation("xatmd did not restart (%s, status %s)"
                            % (r, self.tm.proc.returncode))
            fault = None
            time.sleep(1)
        return False

    # ---------------------------------------------------------------- one trial

    def run_trial(self, no, seed):
        rng = random.Random(seed)
        fault = pick_fault(rng, bool(self.servers_dir), self.args.protocol, self.args.decider)
        tdir = os.path.join(self.work, "trials", str(no))
        os.makedirs(tdir, exist_ok=True)
        t = Trial(no, seed, fault, tdir)
        t.log_offset = self.tm.log_size()
        self.tm.note("trial %d seed %d: %s" % (no, seed, fault["desc"]))
        kind = fault["kind"]
        t.restart_fault = fault.get("recovery_fault")

        # xatmd in the state this trial needs: restarted when it is down, armed, or must be
        want = fault["tm_fault"]
        if not self.tm.alive() or self.tm.fault or want:
            if self.tm.alive():
                st = self.tm.stop()
                if st != 0:
                    t.violation("xatmd exited with status %s at SIGTERM" % st)
            r = self.tm.start(fault=want, fault_seed=fault["fault_seed"], why="trial %d" % no)
            if r == "died" and want and self.tm.fired():
                t.fired = True
                t.event("xatmd died at %s during start-up" % want)
                t.fired_points.append(want)
                if t.restart_fault:
                    t.restarted_armed = True
                    r = self.tm.start(fault=t.restart_fault, why="trial %d" % no)
                    if r == "died" and self.tm.fired():
                        t.event("xatmd died at %s during start-up" % t.restart_fault)
                        t.fired_points.append(t.restart_fault)
                        r = self.tm.start(why="trial %d" % no)
                else:
                    r = self.tm.start(why="trial %d" % no)
            if r != "ready":
                t.violation("xatmd did not start (%s): see its log" % r)
                return self.finish(t)

        # the APs
        transfers = self.args.transfers
        self.aps = []
        for k in range(N_APS):
            ap_fault = fault["ap_fault"] if k == fault["ap"] else None
            mixed = "3pc" if self.args.decider and k == DECIDER_3PC_AP else None
            self.aps.append(Ap(k, self.transfer_bin, self.config, tdir,
                               rng.randrange(1 << 31), transfers, no, ap_fault,
                               protocol=mixed))
        t.started = now()
        t.t0 = None

        try:
            self.inject(t, fault)
        finally:
            for p in self.stopped:
                signal_group(p, signal.SIGCONT)
            self.stopped = []

        # the APs finish their work (bounded)
        ap_deadline = now() + self.args.ap_timeout
        while any(a.alive() for a in self.aps) and now() < ap_deadline:
            self.watch_xatmd(t)
            time.sleep(0.05)
        for a in self.aps:
            if a.alive():
                t.violation("AP %d (pid %d) still running %d s after the fault; killed"
                            % (a.no, a.pid, self.args.ap_timeout))
                a.kill()
        if t.t0 is None:
            t.t0 = now()

        ok, t_conv, pending = self.wait_converged(t)
        # the watchdog may have restarted xatmd while we waited: measure from then
        t.conv = t_conv - t.t0
        if not ok:
            t.violation("not converged %d s after the fault: %s"
                        % (self.args.converge_timeout, ", ".join(pending)))
            self.balances = None  # still moving: the next trial re-reads them
            self.heal(t)
        else:
            self.check(t)
        return self.finish(t)

    def partition_trial(self, no, action):
        """docs/protocols.md, "Partitions": one AP (one worker) runs transfers; xatmd cuts
        its path to that AP right after sending PreCommit of its PARTITION_AT-th
        transaction. With action `commit` the documented result is a divergence: xatmd
        aborts and rolls back the PostgreSQL branch, libxatm commits at its participant
        timeout and only the MariaDB branch commits; xatmd reports it as heuristic mixed.
        With `wait` there is none: both branches roll back. Any other result is a
        violation. Returns the Trial."""
        desc = "partition between AP and xatmd after PreCommit, participant_timeout_action " \
               + action
        tdir = os.path.join(self.work, "trials", "p-" + action)
        os.makedirs(tdir, exist_ok=True)
        t = Trial(no, 0, {"kind": "partition-" + action, "desc": desc}, tdir)
        t.log_offset = self.tm.log_size()
        self.tm.note("trial %d: %s" % (no, desc))
        st = self.tm.stop()
        if st != 0:
            t.violation("xatmd exited with status %s at SIGTERM" % st)
        self.write_config(action=action, partition=True)
        fault = "tm.after_precommit_sent@%d:partition" % PARTITION_AT
        if self.tm.start(fault=fault, why="trial %d" % no) != "ready":
            t.violation("xatmd did not start with %s" % fault)
            return t
        ap = Ap(0, self.transfer_bin, self.config, tdir, 1, PARTITION_AT + 2, no,
                workers=1, abort_percent=0)
        self.aps = [ap]
        t.started = now()
        deadline = now() + self.args.ap_timeout
        while ap.alive() and now() < deadline:
            time.sleep(0.05)
        if ap.alive():
            t.violation("the AP still runs %d s after the partition; killed" % self.args.ap_timeout)
            ap.kill()
        t.t0 = ap.ended_at or now()
        t.fired = self.tm.fired()
        if not t.fired:
            t.violation("the partition did not happen (%s never fired)" % fault)
        ok, t_conv, pending = self.wait_converged(t)
        t.conv = t_conv - t.t0
        if not ok:
            t.violation("not converged: %s" % ", ".join(pending))
            return t
        like = "id LIKE '%s-%%'" % ap.prefix
        pg = self.sql.pg("SELECT id FROM transfers WHERE " + like)
        my = self.sql.my("SELECT id FROM transfers WHERE " + like)
        if pg is None or my is None:
            t.violation("cannot read the ledgers: %s" % self.sql.last_error)
            return t
        pg_ids = {r[0] for r in pg[0]}
        my_ids = {r[0] for r in my[0]}
        only_pg, only_my = sorted(pg_ids - my_ids), sorted(my_ids - pg_ids)
        log = self.tm.log_since(t.log_offset)
        reported = "heuristic mixed" in log.lower()
        t.transfers = len(pg_ids | my_ids)
        if action == "commit":
            if only_pg or len(only_my) != 1:
                t.violation("expected exactly one transfer committed on MariaDB only (the "
                            "documented 3PC divergence), found only on PostgreSQL: %s, only "
                            "on MariaDB: %s" % (only_pg or "none", only_my or "none"))
            elif not reported:
                t.violation("the divergence of %s happened but xatmd did not report a "
                            "heuristic mixed outcome" % only_my[0])
            else:
                t.result = ("divergence, as documented: transfer %s committed on MariaDB, "
                            "rolled back on PostgreSQL; xatmd reported it as heuristic mixed"
                            % only_my[0])
        else:
            if only_pg or only_my:
                t.violation("divergence with participant_timeout_action wait: only on "
                            "PostgreSQL: %s, only on MariaDB: %s" % (only_pg or "none",
                                                                     only_my or "none"))
            else:
                t.result = ("no divergence, as documented: the partitioned transaction "
                            "rolled back on both sides; %d transfers on both" % len(pg_ids))
        return t

    def run_partition_trials(self, first_no):
        """Both partition trials, `wait` first. The `commit` trial leaves the ledgers
        diverged by design, so they are set up again afterwards and the campaign's own
        checks (which ran before) are not affected. Returns the number of violations."""
        bad = 0
        for k, action in enumerate(("wait", "commit")):
            t = self.partition_trial(first_no + k, action)
            ok = not t.violations
            say("trial %4d  %-13s %-4s %5s  %s" % (
                t.no, "partition", "ok" if ok else "FAIL",
                "%.2fs" % t.conv if t.conv is not None else "-", t.fault["desc"]))
            if ok:
                say("    result: %s" % t.result)
                shutil.rmtree(t.tdir, ignore_errors=True)
            else:
                bad += 1
                kept = self.keep(t)
                for v in t.violations:
                    say("    VIOLATION: %s" % v)
                say("    kept: %s" % kept)
            self.results.append(t)
        # back to the campaign's own config and a clean ledger
        self.tm.stop()
        self.write_config()
        self.tm.start(why="after the partition trials")
        self.wait_converged(deadline=now() + 60)
        subprocess.run([self.transfer_bin, "-c", self.config, "setup", "--accounts",
                        str(ACCOUNTS), "--balance", str(BALANCE)], capture_output=True)
        return bad

    def heal(self, t):
        """After a trial that did not converge: restart xatmd (a fresh recovery, new RM
        sessions) and wait once more, so that the next trial does not fail on this one's
        leftovers. Sets t.stuck when even that does not converge: the campaign then stops,
        since every further trial would fail the same way."""
        for a in self.aps:
            if a.alive():
                a.kill()
        st = self.tm.stop()
        if st != 0:
            t.event("xatmd exited with status %s at SIGTERM while stuck" % st)
        self.tm.start(why="trial %d: restart after no convergence" % t.no)
        start = now()
        ok, _, pending = self.wait_converged(deadline=now() + self.args.converge_timeout)
        if ok:
            t.violation("(it converged %.1f s after a restart of xatmd)" % (now() - start))
        else:
            t.violation("still not converged %d s after a restart of xatmd (%s): the campaign "
                        "stops here" % (self.args.converge_timeout, ", ".join(pending)))
            t.stuck = True

    def inject(self, t, f):
        kind = f["kind"]
        ap = self.aps[f["ap"]]
        if kind in ("tm-kill-point", "tm-kill-recovery", "log-enospc", "log-torn"):
            # armed in xatmd: wait for it to fire (the watchdog restarts xatmd) or for the
            # APs to finish without it
            while any(a.alive() for a in self.aps):
                self.watch_xatmd(t)
                if t.fired and t.t0 is not None and not (
                        t.restart_fault and not t.restarted_armed):
                    break
                time.sleep(0.02)
        elif kind == "tm-kill-time":
            self.sleep_until(t.started + f["delay"])
            if self.tm.alive():
                t.killed_tm = True
                self.tm.kill()
                t.fired = True
                t.event("xatmd killed")
                time.sleep(f["down_for"])
                self.watch_xatmd(t)
        elif kind == "ap-kill-point":
            while ap.alive():
                time.sleep(0.02)
            if ap.proc.returncode == -signal.SIGKILL and "xatm fault:" in ap.output():
                t.fired = True
                t.t0 = ap.ended_at
        elif kind == "ap-kill-time":
            self.sleep_until(t.started + f["delay"])
            if ap.alive():
                ap.kill()
                t.fired = True
                t.t0 = now()
        elif kind == "rm-kill":
            self.sleep_until(t.started + f["delay"])
            t.fired = True
            self.servers("kill", f["rm"], t)
            time.sleep(f["down_for"])
            self.servers("restart", f["rm"], t)
            t.t0 = now()
        elif kind == "ap-stop":
            if f["ap_fault"]:
                while ap.alive() and proc_state(ap.pid) != "T":
                    time.sleep(0.02)
                if not ap.alive():
                    return
            else:
                self.sleep_until(t.started + f["delay"])
                if not ap.alive():
                    return
                signal_group(ap.proc, signal.SIGSTOP)
            self.stopped.append(ap.proc)
            t.fired = True
            time.sleep(f["stop_for"])
            signal_group(ap.proc, signal.SIGCONT)
            self.stopped.remove(ap.proc)
            t.t0 = now()
        elif kind == "tm-stop":
            tm = self.tm.proc
            if f["tm_fault"]:
                while any(a.alive() for a in self.aps) and self.tm.alive() and \
                        proc_state(tm.pid) != "T":
                    time.sleep(0.02)
                if proc_state(tm.pid) != "T":
                    return
            else:
                self.sleep_until(t.started + f["delay"])
                if not self.tm.alive():
                    return
                signal_group(tm, signal.SIGSTOP)
            self.stopped.append(tm)
            t.fired = True
            time.sleep(f["stop_for"])
            signal_group(tm, signal.SIGCONT)
            self.stopped.remove(tm)
            t.t0 = now()

    def sleep_until(self, when):
        while now() < when:
            time.sleep(min(0.02, max(0.0, when - now())))

    def servers(self, cmd, which, t):
        p = subprocess.run([self.servers_sh, cmd, which, self.servers_dir],
                           capture_output=True, text=True, timeout=120)
        t.event("servers.sh %s %s: %s" % (cmd, which, (p.stdout + p.stderr).strip()
                                            .replace("\n", " | ")))
        if p.returncode != 0:
            t.violation("servers.sh %s %s failed" % (cmd, which))

    # ---------------------------------------------------------------- checks

    def check(self, t):
        like = " OR ".join("id LIKE '%s-%%'" % a.prefix for a in self.aps)
        pg = self.sql.pg("SELECT COALESCE(sum(balance), 0) FROM accounts",
                         "SELECT id, amount FROM transfers WHERE " + like)
        my = self.sql.my("SELECT COALESCE(sum(balance), 0) FROM accounts",
                         "SELECT id, amount FROM transfers WHERE " + like)
        if pg is None or my is None:
            t.violation("cannot read the ledgers: %s" % self.sql.last_error)
            return
        pg_sum, my_sum = int(pg[0][0][0]), int(my[0][0][0])
        pg_rows = {r[0]: int(r[1]) for r in pg[1]}
        my_rows = {r[0]: int(r[1]) for r in my[1]}
        t.transfers = len(pg_rows)
        # (a) money
        if pg_sum + my_sum != self.expected_total:
            t.violation("(a) total balance %d, expected %d" % (pg_sum + my_sum,
                                                              self.expected_total))
            # report the damage once: later trials are checked against what is there now
            # (the final check still compares with the amount set up)
            self.expected_total = pg_sum + my_sum
        prev_pg, prev_my = self.balances or (pg_sum, my_sum)
        moved_pg = -sum(pg_rows.values())
        moved_my = sum(my_rows.values())
        if self.balances is None:
            t.event("balances re-read after an unconverged trial: per-side deltas not checked")
        elif pg_sum - prev_pg != moved_pg:
            t.violation("(a) PostgreSQL balances moved by %d, its ledger rows of this trial "
                        "say %d" % (pg_sum - prev_pg, moved_pg))
        if self.balances is not None and my_sum - prev_my != moved_my:
            t.violation("(a) MariaDB balances moved by %d, its ledger rows of this trial "
                        "say %d" % (my_sum - prev_my, moved_my))
        self.balances = (pg_sum, my_sum)
        # (b) both sides or neither
        only_pg = sorted(set(pg_rows) - set(my_rows))
        only_my = sorted(set(my_rows) - set(pg_rows))
        differ = sorted(i for i in set(pg_rows) & set(my_rows) if pg_rows[i] != my_rows[i])
        if only_pg:
            t.violation("(b) %d transfers only on PostgreSQL: %s" % (len(only_pg),
                                                                    " ".join(only_pg[:10])))
        if only_my:
            t.violation("(b) %d transfers only on MariaDB: %s" % (len(only_my),
                                                                 " ".join(only_my[:10])))
        if differ:
            t.violation("(b) %d transfers with different amounts: %s"
                        % (len(differ), " ".join(differ[:10])))
        # (c) what the APs saw committed
        committed = []
        for a in self.aps:
            committed += a.committed_ids()
        t.committed = len(committed)
        lost = [i for i in committed if i not in pg_rows or i not in my_rows]
        if lost:
            t.violation("(c) %d transfers reported committed are missing: %s"
                        % (len(lost), " ".join(lost[:10])))
        with open(self.committed_all, "a") as f:
            f.write("".join(i + "\n" for i in committed))
        # (d) is part of convergence; the whole ledgers, now and then
        if self.args.full_check_every and t.no % self.args.full_check_every == 0:
            self.full_check(t)

    def full_check(self, t):
        q = "SELECT count(*), COALESCE(sum(amount), 0) FROM transfers"
        pg, my = self.sql.pg(q), self.sql.my(q)
        if pg is None or my is None:
            t.violation("cannot read the ledgers: %s" % self.sql.last_error)
            return
        if pg[0][0] != my[0][0]:
            t.violation("(b) whole ledgers differ: PostgreSQL count,sum %s, MariaDB %s"
                        % (",".join(pg[0][0]), ",".join(my[0][0])))
        pg_sum, my_sum = self.balances or (0, 0)
        if self.balances and pg_sum != ACCOUNTS * BALANCE - int(pg[0][0][1]) or \
                my_sum != ACCOUNTS * BALANCE + int(my[0][0][1]):
            t.violation("(a) balances do not match the whole ledgers")

    def final_check(self):
        """xatm-transfer check over everything, with every committed id of the campaign."""
        p = subprocess.run([self.transfer_bin, "-c", self.config, "check", "--committed-log",
                            self.committed_all], capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        return p.returncode == 0, out

    # ---------------------------------------------------------------- reporting

    def finish(self, t):
        fired = self.fired.setdefault(t.fault["kind"], [0, 0])
        fired[1] += 1
        fired[0] += 1 if t.fired else 0
        ok = not t.violations
        if ok:
            self.max_conv = max(self.max_conv, t.conv or 0.0)
        fired = "not fired"
        if t.fired:
            fired = "fired" if len(t.fired_points) < 2 else "both fired"
        say("trial %4d  seed %-8d %-4s %5s  %-9s  %s" % (
            t.no, t.seed, "ok" if ok else "FAIL",
            "%.2fs" % t.conv if t.conv is not None else "-", fired, t.fault["desc"]))
        if not ok:
            self.violations += 1
            kept = self.keep(t)
            for v in t.violations:
                say("    VIOLATION: %s" % v)
            say("    fault: %s; replay alone: scripts/crash-campaign.sh --replay %d%s"
                % (t.fault["desc"], t.seed,
                   (" --protocol " + self.args.protocol if self.args.protocol != "2pc" else "")
                   + (" --decider " + self.args.decider if self.args.decider else "")))
            say("    kept: %s" % kept)
        else:
            shutil.rmtree(t.tdir, ignore_errors=True)
        self.results.append(t)
        return ok

    def keep(self, t):
        if not self.keep_dir:
            self.keep_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                         "xatm-campaign-failures-%s" % time.strftime(
                                             "%Y%m%d-%H%M%S"))
        dest = os.path.join(self.keep_dir, "trial-%d-seed-%d" % (t.no, t.seed))
        os.makedirs(self.keep_dir, exist_ok=True)
        shutil.copytree(t.tdir, dest, dirs_exist_ok=True)
        with open(os.path.join(dest, "xatmd.log"), "w") as f:
            f.write(self.tm.log_since(t.log_offset))
        shutil.copy(self.tm.log_path, os.path.join(dest, "xatmd-whole-campaign.log"))
        shutil.copytree(os.path.join(self.work, "log"), os.path.join(dest, "decision-log"),
                        dirs_exist_ok=True)
        with open(os.path.join(dest, "trial.txt"), "w") as f:
            f.write("trial %d seed %d\nfault: %s\nparameters: %r\n" % (
                t.no, t.seed, t.fault["desc"], t.fault))
            f.write("ap pids: %s\n" % " ".join(str(a.pid) for a in self.aps))
            for e in t.events:
                f.write("event: %s\n" % e)
            for v in t.violations:
                f.write("VIOLATION: %s\n" % v)
            f.write("pending now: %s\n" % ", ".join(self.pending_work()))
        if self.servers_dir:
            for src, name in (("pg/postgres.log", "postgres.log"), ("my/error.log",
                                                                   "mariadb-error.log")):
                try:
                    with open(os.path.join(self.servers_dir, src), "rb") as s:
                        s.seek(0, 2)
                        s.seek(max(0, s.tell() - 200000))
                        data = s.read()
                    with open(os.path.join(dest, name), "wb") as d:
                        d.write(data)
                except OSError:
                    pass
        return dest

    def cleanup(self):
        for p in self.stopped:
            signal_group(p, signal.SIGCONT)
        for a in self.aps:
            if a.alive():
                a.kill()
        st = self.tm.stop()
        return st


class Trial:
    """The state and findings of one trial."""

    def __init__(self, no, seed, fault, tdir):
        self.no = no
        self.seed = seed
        self.fault = fault
        self.tdir = tdir
        self.fired = False          # the fault happened
        self.fired_points = []      # xatmd fault points that fired (tm-kill-recovery: 2)
        self.t0 = None              # when the fault was over (restart, SIGCONT, death)
        self.conv = None            # seconds from t0 to convergence
        self.started = None         # when the APs were started
        self.killed_tm = False      # the campaign itself just killed xatmd
        self.restart_fault = None   # tm-kill-recovery: arm this in the restarted xatmd
        self.restarted_armed = False
        self.enospc_at = None       # when the disk-full fault was seen firing
        self.violations = []
        self.events = []
        self.stuck = False          # left a state the campaign cannot go on from
        self.transfers = 0
        self.committed = 0
        self.log_offset = 0
        self.result = ""            # partition trials: what happened, in words

    def violation(self, text):
        self.violations.append(text)

    def event(self, text):
        self.events.append("%.2f %s" % (now() - (self.started or now()), text))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="crash-campaign",
                                 description="Crash campaign: prove xatm's atomicity.")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--replay", type=int, default=None, metavar="SEED",
                    help="run the one trial with this seed (same as --trials 1 --seed SEED)")
    ap.add_argument("--protocol", default="2pc", choices=["2pc", "3pc"],
                    help="commit protocol of every trial; 3pc runs with "
                         "participant_timeout_action wait and ends with the partition trials")
    ap.add_argument("--decider", nargs="?", const="pg", default=None, choices=["pg", "my"],
                    help="the decision in a branch (tm.decision_rm: pg, or the RM named): "
                         "two APs in 2pc decided in the branch, AP 0 in 3pc through the log; "
                         "adds the decider and 3pc fault points")
    ap.add_argument("--no-partition", action="store_true",
                    help="3pc: leave out the two partition trials at the end")
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--keep-dir", default=os.environ.get("XATM_CAMPAIGN_KEEP", ""),
                    help="where failing trials are kept (default: a new "
                         "$TMPDIR/xatm-campaign-failures-<time>)")
    ap.add_argument("--transfers", type=int, default=250,
                    help="transfers per AP worker in a trial (3 APs x 2 workers)")
    ap.add_argument("--converge-timeout", type=int, default=60)
    ap.add_argument("--ap-timeout", type=int, default=90)
    ap.add_argument("--full-check-every", type=int, default=50)
    a = ap.parse_args(argv)
    if a.replay is not None:
        a.trials, a.seed = 1, a.replay
    if a.seed is None:
        a.seed = int(time.time()) % 1000000
    if a.trials < 1:
        ap.error("--trials must be at least 1")
    return a


def main(argv):
    args = parse_args(argv)
    for var in ("XATMD", "XATM_TRANSFER", "XATM_TEST_PG_HOST", "XATM_TEST_PG_PORT",
                "XATM_TEST_PG_USER", "XATM_TEST_PG_PASSWORD", "XATM_TEST_PG_DB",
                "XATM_TEST_MY_HOST", "XATM_TEST_MY_PORT", "XATM_TEST_MY_USER",
                "XATM_TEST_MY_PASSWORD", "XATM_TEST_MY_DB"):
        if not os.environ.get(var):
            sys.stderr.write("crash-campaign: %s is not set\n" % var)
            return 2

    def on_signal(signo, frame):
        raise Interrupted()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    c = Campaign(args)
    started = now()
    interrupted = False
    final_ok, final_out = True, ""
    try:
        if not c.setup():
            c.cleanup()
            return 2
        say("crash campaign: %d trials, seed %d (trial k has seed %d + k - 1), protocol %s%s, "
            "work dir %s" % (args.trials, args.seed, args.seed, args.protocol,
                             " with the decider " + args.decider if args.decider else "",
                             args.work_dir))
        say("columns: trial, seed, result, time from the end of the fault to convergence, "
            "whether the fault happened, the fault")
        if not c.servers_dir:
            say("note: XATM_TEST_SERVERS_DIR is not set, so database crashes are left out")
        for k in range(1, args.trials + 1):
            c.run_trial(k, args.seed + k - 1)
            if c.results and c.results[-1].stuck:
                say("stopping after trial %d: the servers did not converge even after a "
                    "restart of xatmd" % k)
                break
        final_ok, final_out = c.final_check()
        say("final check (xatm-transfer check over the whole campaign): %s" % final_out
            .splitlines()[-1] if final_out else "(no output)")
        if not final_ok:
            c.violations += 1
            say("    VIOLATION: the final check failed:\n%s" % final_out)
        if args.protocol == "3pc" and not args.no_partition:
            c.violations += c.run_partition_trials(len(c.results) + 1)
    except Interrupted:
        interrupted = True
        say("interrupted: stopping the APs and xatmd")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        st = c.cleanup()
        if st not in (0, None) and not interrupted:
            say("    VIOLATION: xatmd exited with status %s at the final SIGTERM" % st)
            c.violations += 1
    elapsed = now() - started
    dist = ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(c.fired.items()))
    say("fault distribution (fired/trials): %s" % (dist or "none"))
    say("wall time: %.0f s (%.1f s per trial)" % (elapsed, elapsed / max(1, len(c.results))))
    if c.keep_dir and c.violations:
        say("failing trials kept in %s" % c.keep_dir)
    say("trials: %d, violations: %d, max convergence: %.1f s" % (len(c.results), c.violations,
                                                                  c.max_conv))
    if interrupted:
        return 130
    return 1 if c.violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
