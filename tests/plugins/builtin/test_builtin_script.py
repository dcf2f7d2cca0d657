"""builtin.script alone: environment, outputs, logs, failures, timeout and cancellation of real processes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tempano.plugins.builtin import plugin
from tempano.plugins.contract import ConfigurationError, NonRetryableError, ResourceNotFound, RetryableError
from tempano.plugins.testing import LocalContext, instance


class Recording(LocalContext):
    """Keeps the log lines the operation writes."""

    lines: list[str]

    def log(self, message: str, *args: Any) -> None:
        self.__dict__.setdefault("lines", []).append(message % args if args else message)


def context(blueprint: Path, script: str, **inputs: Any) -> Recording:
    return Recording(
        instance("web"),
        operation="Standard.create",
        inputs={"script": script, **inputs},
        deployment_id="dep",
        plugin="builtin",
        blueprint_dir=blueprint,
    )


def write(blueprint: Path, name: str, text: str) -> None:
    path = blueprint / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)  # not executable: CSARs lose the mode bits


def run(ctx: Recording) -> Any:
    return plugin.operations["script"](ctx)


def test_inputs_arrive_as_environment_and_outputs_come_back(tmp_path: Path) -> None:
    write(
        tmp_path,
        "scripts/create.sh",
        "#!/bin/sh\nset -eu\n"
        'echo "name=$NAME count=$COUNT on=$ENABLED ports=$PORTS none=[$NOTHING]"\n'
        'echo "ctx=$TEMPANO_DEPLOYMENT_ID/$TEMPANO_NODE/$TEMPANO_NODE_INSTANCE/$TEMPANO_OPERATION"\n'
        'echo "dir=$TEMPANO_BLUEPRINT_DIR pwd=$(pwd)" >&2\n'
        'echo "address=10.0.0.5" >> "$TEMPANO_OUTPUTS"\n'
        'echo "status=first" >> "$TEMPANO_OUTPUTS"\n'
        'echo "status=ready" >> "$TEMPANO_OUTPUTS"\n'
        'echo "not an output line" >> "$TEMPANO_OUTPUTS"\n'
        'pwd > "$TEMPANO_BLUEPRINT_DIR/workdir"\n',
    )
    ctx = context(tmp_path, "scripts/create.sh", NAME="fw 1", COUNT=3, ENABLED=True, PORTS=[80, 443], NOTHING=None)
    outputs = run(ctx)
    assert outputs == {"address": "10.0.0.5", "status": "ready"}
    assert ctx.instance.attribute_writes == {"address": "10.0.0.5", "status": "ready"}
    assert "web_1 | name=fw 1 count=3 on=true ports=[80, 443] none=[]" in ctx.lines
    assert "web_1 | ctx=dep/web/web_1/Standard.create" in ctx.lines
    assert any(line.startswith(f"web_1 | stderr: dir={tmp_path.resolve()} pwd=") for line in ctx.lines)
    workdir = Path((tmp_path / "workdir").read_text().strip())
    assert workdir != tmp_path.resolve() and not workdir.exists()  # a fresh directory, removed afterwards


def test_python_scripts_run_with_the_workers_python(tmp_path: Path) -> None:
    write(
        tmp_path,
        "configure.py",
        "import os, sys\nprint(sys.executable)\n"
        "open(os.environ['TEMPANO_OUTPUTS'], 'a').write('payload=' + os.environ['DATA'] + '\\n')\n",
    )
    ctx = context(tmp_path, "configure.py", DATA={"b": [1, 2], "a": "x"})
    outputs = run(ctx)
    assert json.loads(outputs["payload"]) == {"a": "x", "b": [1, 2]}


def test_a_failing_script_reports_its_exit_status_and_last_stderr_lines(tmp_path: Path) -> None:
    lines = "".join(f"echo 'problem {i}' >&2\n" for i in range(15))
    write(tmp_path, "fail.sh", f"echo starting\n{lines}exit 3\n")
    ctx = context(tmp_path, "fail.sh")
    with pytest.raises(NonRetryableError) as caught:
        run(ctx)
    message = str(caught.value)
    assert message.startswith("web_1 Standard.create: script fail.sh failed with exit status 3: problem 5 / ")
    assert message.endswith("problem 14")
    assert "problem 4" not in message
    assert "web_1 | starting" in ctx.lines
    assert ctx.instance.attribute_writes == {}


def test_exit_75_asks_for_a_retry(tmp_path: Path) -> None:
    write(tmp_path, "busy.sh", "echo 'the service is still starting' >&2\nexit 75\n")
    with pytest.raises(RetryableError, match=r"asked for a retry .*: the service is still starting"):
        run(context(tmp_path, "busy.sh"))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of an already killed child still answers until reaped by init
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" in status.read_text()


def test_timeout_kills_the_script_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    write(tmp_path, "hang.sh", f"sleep 300 &\necho $! > {pid_file}\necho waiting >&2\nwait\n")
    # 3 s: enough for bash to start the child and say so on a loaded machine, before the timeout kills them
    with pytest.raises(NonRetryableError, match=r"did not finish within 3 s.*last stderr: waiting"):
        run(context(tmp_path, "hang.sh", timeout=3))
    assert _gone(int(pid_file.read_text()))


def test_cancellation_stops_the_script(tmp_path: Path) -> None:
    started = tmp_path / "started"
    write(tmp_path, "long.sh", f"touch {started}\nexec sleep 300\n")
    ctx = context(tmp_path, "long.sh")

    def cancel_once_started() -> None:
        for _ in range(600):
            if started.exists():
                break
            threading.Event().wait(0.05)
        ctx.cancelled.set()

    threading.Thread(target=cancel_once_started, daemon=True).start()
    with pytest.raises(NonRetryableError, match=r"script long\.sh was cancelled"):
        run(ctx)


def test_bad_references_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(ResourceNotFound, match=r"script .missing\.sh. does not exist in the blueprint directory"):
        run(context(tmp_path, "missing.sh"))
    with pytest.raises(ConfigurationError, match="outside the blueprint directory"):
        run(context(tmp_path, "../escape.sh"))
    for impossible in ("x" * 300 + ".sh", "a\0b.sh"):  # the file system raises for these, not "no such file"
        with pytest.raises(ConfigurationError, match="no file can be named script"):
            run(context(tmp_path, impossible))
    with pytest.raises(ConfigurationError, match="needs the input `script`"):
        run(context(tmp_path, ""))
    write(tmp_path, "ok.sh", "true\n")
    with pytest.raises(ConfigurationError, match="input 'bad-name' cannot be an environment variable"):
        run(context(tmp_path, "ok.sh", **{"bad-name": 1}))
    with pytest.raises(ConfigurationError, match="input timeout 'soon' is not a number"):
        run(context(tmp_path, "ok.sh", timeout="soon"))
