"""Model names: lookup keys, never paths."""

from __future__ import annotations

import re

# No separators, no "..", no control characters: a name can be a file stem without being a path.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
MODEL_NAME_RULE = "use letters, digits and . _ : @ + - (a model name is not a path)"
