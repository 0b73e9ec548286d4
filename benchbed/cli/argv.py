"""Global options accepted after the sub-command too (``benchbed run --results-dir X``), as users type them.

Click only parses a group's options before the sub-command's name; this moves them there, so both orders
mean the same. Only the group's own options move, and nothing after a ``--``.
"""

from __future__ import annotations

# the group's options (benchbed/cli/app.py main_options): those that take a value, and flags
VALUED = ("--data-dir", "--cache-dir", "--results-dir")
FLAGS = ("-v", "--verbose", "-q", "--quiet")


def hoist_global_options(args: list[str], commands: set[str]) -> list[str]:
    """``[cmd, ..., --results-dir, X, ...]`` -> ``[--results-dir, X, cmd, ...]``; other orders unchanged."""
    position = next((i for i, a in enumerate(args) if a in commands), None)
    if position is None:
        return list(args)
    head, rest = list(args[:position]), list(args[position:])
    moved: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            kept += rest[i:]
            break
        name = arg.split("=", 1)[0]
        if name in VALUED and i > 0:
            if "=" in arg:
                moved.append(arg)
            elif i + 1 < len(rest):
                moved += [arg, rest[i + 1]]
                i += 1
            else:
                kept.append(arg)  # no value: let click report it
        elif arg in FLAGS and i > 0:
            moved.append(arg)
        elif i > 0 and arg.startswith("-v") and set(arg[1:]) == {"v"}:
            moved.append(arg)  # -vv
        else:
            kept.append(arg)
        i += 1
    return head + moved + kept
