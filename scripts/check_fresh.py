#!/usr/bin/env python3
"""Checks that the server binary the README's `cargo run --release -- serve` runs is already built.

The test command compiles the DataFusion/Delta/Iceberg stack in the release profile; the README
promises that the run command then compiles nothing. This asks cargo to build exactly what
`cargo run --release` builds and fails, naming the units, if any of them was not fresh — so a
profile, feature or target-folder change that would make a newcomer compile the stack twice is
caught by the test command itself.
"""
import json
import subprocess
import sys

COMMAND = ["cargo", "build", "--release", "--locked", "--bin", "meshql", "--message-format=json"]


def main() -> int:
    done = subprocess.run(COMMAND, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"`{' '.join(COMMAND)}` failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    fresh, rebuilt = 0, []
    for line in done.stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact":
            continue
        if message.get("fresh"):
            fresh += 1
        else:
            rebuilt.append(message["target"]["name"] + " " + message["package_id"].rsplit("#", 1)[-1])
    if rebuilt:
        print(f"`cargo run --release` would compile {len(rebuilt)} unit(s) the test command did not "
              f"leave fresh (so the README's two commands would build twice):", file=sys.stderr)
        for unit in rebuilt:
            print(f"  {unit}", file=sys.stderr)
        return 1
    print(f"the server binary is built: all {fresh} units of `cargo run --release` are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
