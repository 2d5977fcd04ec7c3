"""Record drift during a check-mode run (playbooks/drift_check.yml).

In check mode every task that reports "changed" is a difference between the fleet and what the
repository says. This callback writes each one (host, task, file when the task manages one) to a
JSON report that drift_check.yml's last play reads to name them and fail. Outside check mode it
does nothing.
"""

from __future__ import annotations

DOCUMENTATION = """
name: webfleet_drift
type: aggregate
short_description: Record changed tasks of a check-mode run as drift
description:
  - Writes the hosts, tasks and files that would change to a JSON report.
options:
  report:
    description: Where the JSON report is written.
    default: .cache/drift.json
    env:
      - name: WEBFLEET_DRIFT_REPORT
    ini:
      - section: callback_webfleet_drift
        key: report
"""

import json
import os

from ansible import context
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "webfleet_drift"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._drift = []
        self._path = None

    def _active(self):
        return bool(context.CLIARGS.get("check"))

    def v2_playbook_on_start(self, playbook):
        self._path = os.path.abspath(self.get_option("report"))
        if self._active():
            self._write()

    def _write(self):
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        tmp = self._path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"drift": self._drift}, fh, indent=1)
        os.replace(tmp, self._path)

    def _record(self, result, item=None):
        res = result._result
        args = res.get("invocation", {}).get("module_args", {}) or {}
        path = args.get("dest") or args.get("path") or args.get("name")
        # The diff's before_header names the file on the host (template and copy put their own
        # source, a controller temp file, in after_header); the module's own dest/path wins.
        for diff in res.get("diff", []) if isinstance(res.get("diff"), list) else [res.get("diff") or {}]:
            if not args.get("dest") and not args.get("path"):
                path = diff.get("before_header") or diff.get("after_header") or path
        self._drift.append({
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "file": str(path) if path else None,
        })
        self._write()

    def v2_runner_on_ok(self, result):
        if self._active() and result._result.get("changed") and "results" not in result._result:
            self._record(result)

    def v2_runner_item_on_ok(self, result):
        if self._active() and result._result.get("changed"):
            self._record(result)
