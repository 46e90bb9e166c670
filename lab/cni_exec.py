#!/usr/bin/env python3
"""Runs a CNI conflist plugin by plugin, the way libcni does (what containerd and CRI-O use).

ADD: plugins in order; each gets its own config plus the list's name/cniVersion and, from the
second plugin on, prevResult = the previous plugin's result. The last result is the pod's result.
DEL: plugins in reverse order, each with prevResult = the cached ADD result (libcni behaviour).

usage: cni_exec.py add|del|check --conflist F --container-id ID --netns PATH --ifname IF
                   --args 'K=V;K=V' --cni-path P1:P2 [--cache FILE] [--skip TYPE]...
                   [--capability KEY=JSON]...
--capability: what the runtime knows for a capability (cgroupPath="/tg/pod"); a plugin gets it
in runtimeConfig only when its config lists the capability as true (CNI spec, "Deriving
runtimeConfig").
ADD prints the final result JSON on stdout and stores it in --cache. On a plugin error it prints
the plugin's error JSON on stderr and exits 1 (the caller then runs DEL, as a runtime would).
"""
import argparse
import json
import os
import subprocess
import sys


def find_plugin(plugin_type, cni_path):
    for d in cni_path.split(":"):
        p = os.path.join(d, plugin_type)
        if d and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def run_plugin(command, conf, args, list_name, version, prev):
    stdin = dict(conf)
    caps = conf.get("capabilities") or {}
    runtime = {k: v for k, v in args.capability.items() if caps.get(k) is True}
    if runtime:
        stdin["runtimeConfig"] = runtime
    stdin["name"] = list_name
    stdin["cniVersion"] = version
    if prev is not None:
        stdin["prevResult"] = prev
    binary = find_plugin(conf["type"], args.cni_path)
    if binary is None:
        err = {"cniVersion": version, "code": 999,
               "msg": f"failed to find plugin {conf['type']!r} in path {args.cni_path}"}
        return 1, None, json.dumps(err)
    env = dict(os.environ)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": args.container_id,
        "CNI_NETNS": args.netns,
        "CNI_IFNAME": args.ifname,
        "CNI_ARGS": args.args,
        "CNI_PATH": args.cni_path,
    })
    try:
        proc = subprocess.run([binary], input=json.dumps(stdin).encode(), env=env,
                              capture_output=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        err = {"cniVersion": version, "code": 999,
               "msg": f"plugin {conf['type']} {command} timed out after {args.timeout}s"}
        return 1, None, json.dumps(err)
    out = proc.stdout.decode(errors="replace").strip()
    errtext = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0:
        # The CNI error JSON is on stdout; stderr may hold the plugin's own log lines.
        detail = out or errtext or f"exit code {proc.returncode}, no output"
        if errtext and out:
            detail += "\n" + errtext
        return proc.returncode, None, detail
    if errtext:
        sys.stderr.write(errtext + "\n")
    result = None
    if out:
        try:
            result = json.loads(out)
        except json.JSONDecodeError:
            return 1, None, f"plugin {conf['type']} printed invalid JSON: {out[:200]}"
    return 0, result, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["add", "del", "check"])
    ap.add_argument("--conflist", required=True)
    ap.add_argument("--container-id", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--ifname", default="eth0")
    ap.add_argument("--args", default="")
    ap.add_argument("--cni-path", required=True)
    ap.add_argument("--cache", help="file holding the ADD result (written by add, read by del)")
    ap.add_argument("--skip", action="append", default=[], help="plugin type to leave out")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--capability", action="append", default=[],
                    help="KEY=JSON: a capability argument of the runtime")
    args = ap.parse_args()
    caps = {}
    for c in args.capability:
        key, sep, value = c.partition("=")
        if not sep or not key:
            ap.error(f"--capability {c!r}: expected KEY=JSON")
        try:
            caps[key] = json.loads(value)
        except json.JSONDecodeError as e:
            ap.error(f"--capability {c!r}: {e}")
    args.capability = caps

    with open(args.conflist) as f:
        conflist = json.load(f)
    name = conflist["name"]
    version = conflist.get("cniVersion", "1.0.0")
    plugins = [p for p in conflist["plugins"] if p["type"] not in args.skip]

    if args.command == "add":
        prev = None
        for conf in plugins:
            rc, result, err = run_plugin("ADD", conf, args, name, version, prev)
            if rc != 0:
                sys.stderr.write(f"CNI ADD failed in plugin {conf['type']}:\n{err}\n")
                return 1
            prev = result if result is not None else prev
        if args.cache:
            tmp = args.cache + ".tmp"
            with open(tmp, "w") as f:
                json.dump(prev, f)
            os.replace(tmp, args.cache)
        print(json.dumps(prev))
        return 0

    cached = None
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            try:
                cached = json.load(f)
            except json.JSONDecodeError:
                cached = None
    if args.command == "check":
        for conf in plugins:
            rc, _, err = run_plugin("CHECK", conf, args, name, version, cached)
            if rc != 0:
                sys.stderr.write(f"CNI CHECK failed in plugin {conf['type']}:\n{err}\n")
                return 1
        return 0

    # DEL: every plugin gets its chance even if an earlier one failed; report all failures.
    failed = False
    for conf in reversed(plugins):
        rc, _, err = run_plugin("DEL", conf, args, name, version, cached)
        if rc != 0:
            failed = True
            sys.stderr.write(f"CNI DEL failed in plugin {conf['type']}:\n{err}\n")
    if args.cache and os.path.exists(args.cache) and not failed:
        os.unlink(args.cache)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
