"""No #! line: builtin.script runs .py files with the worker's Python."""

import os

print(f"configuring {os.environ['TEMPANO_NODE_INSTANCE']} against {os.environ['REGISTRY']}")
with open(os.environ["TEMPANO_OUTPUTS"], "a", encoding="utf-8") as outputs:
    outputs.write("status=configured\n")
