"""Print the README's set-up commands: the first two lines of its first ```bash block."""

import pathlib
import re
import sys

text = pathlib.Path(sys.argv[1]).read_text(encoding="utf-8")
block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
lines = [line for line in lines if line]
if len(lines) < 2:
    sys.exit("README.md: the first bash block must hold the two set-up commands")
sys.stdout.write("\n".join(lines[:2]) + "\n")
